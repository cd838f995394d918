"""Optimisers and per-step learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from compress.engine.settings import OptimSettings, ScheduleSettings


def build_optimizer(
    params: Iterable[torch.nn.Parameter], settings: OptimSettings
) -> torch.optim.Optimizer:
    """SGD or AdamW over `params`; BN and bias parameters get no weight decay under AdamW.

    On CUDA the fused implementations are used (one kernel for the whole update).
    """
    params = [p for p in params if p.requires_grad]
    fused = bool(params) and all(p.is_cuda for p in params)
    if settings.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
            nesterov=settings.nesterov and settings.momentum > 0,
            fused=fused or None,
        )
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=settings.lr, betas=tuple(settings.betas), fused=fused or None
    )


def lr_factor(
    step: int, steps_per_epoch: int, epochs: int, settings: ScheduleSettings, base_lr: float
) -> float:
    """The multiplier of the base learning rate at optimiser step `step` (0-based)."""
    epoch = step / max(1, steps_per_epoch)
    warm = settings.warmup_epochs
    warm_factor = (
        min(1.0, (epoch + 1.0 / max(1, steps_per_epoch)) / warm)
        if warm > 0 and epoch < warm
        else 1.0
    )
    if settings.name == "constant":
        factor = 1.0
    elif settings.name == "multistep":
        marks = [m * epochs if m < 1 else m for m in settings.milestones]
        factor = settings.gamma ** sum(1 for m in marks if epoch >= m)
    else:  # cosine, after the warm-up
        span = max(1e-8, epochs - warm)
        progress = min(1.0, max(0.0, (epoch - warm) / span))
        floor = settings.min_lr / base_lr if base_lr > 0 else 0.0
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor * warm_factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    settings: ScheduleSettings,
    *,
    steps_per_epoch: int,
    epochs: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step `LambdaLR` following `settings` (call ``scheduler.step()`` after each batch)."""
    base_lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, epochs, settings, base_lr)
    )
