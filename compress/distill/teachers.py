"""Teacher preparation for R2KD: a pruned copy of the teacher (never retrained) and the blend."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from compress.errors import CompressError


@dataclass
class TeacherPruning:
    """How R2KD's pruned teacher copy is made.

    Attributes:
        mode: ``structured`` (torch-pruning channel pruning; the toolkit's default) or
            ``unstructured`` (L1 magnitude masking of every Conv2d/Linear weight per layer, as the
            authors' code).
        ratio: fraction of channels (structured) or weights per layer (unstructured) removed.
        importance: channel-importance criterion for ``structured`` (see `compress.prune`).
        round_to: keep channel counts multiples of this (``null``: exact ratio; the copy is never
            deployed, so rounding buys nothing here).
        bn: ``eval`` uses the copy's running BatchNorm statistics; ``batch`` uses each batch's
            statistics (the released code leaves the copy in train mode).
    """

    mode: Literal["structured", "unstructured"] = "structured"
    ratio: float = 0.1
    importance: str = "l1"
    round_to: int | None = None
    bn: Literal["eval", "batch"] = "eval"

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"prune.ratio must be in (0, 1), got {self.ratio}")


def blend_logits(z_teacher: torch.Tensor, z_pruned: torch.Tensor, weight: float) -> torch.Tensor:
    """``w·z_T + (1−w)·z_P``: the target R2KD distils from."""
    return weight * z_teacher + (1.0 - weight) * z_pruned


def make_pruned_copy(
    teacher: nn.Module,
    settings: TeacherPruning,
    input_shape: tuple[int, int, int],
    *,
    grad_fn: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A pruned deep copy of `teacher` (the teacher itself is untouched) and what was done.

    Returns:
        ``(copy, facts)`` where facts has ``mode``, ``ratio`` and, for unstructured masking,
        the fraction of weights zeroed.
    """
    from compress.prune import PruneSettings, magnitude_mask_, prune_channels

    pruned = copy.deepcopy(teacher)
    facts: dict[str, Any] = {"mode": settings.mode, "ratio": settings.ratio}
    if settings.mode == "unstructured":
        zeros = magnitude_mask_(pruned, settings.ratio)
        total = sum(
            m.weight.numel() for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
        )
        zeroed = sum(
            float((m.weight == 0).sum())
            for m in pruned.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        )
        facts["zero_fraction"] = zeroed / max(1, total)
        facts["layers"] = len(zeros)
    else:
        try:
            record = prune_channels(
                pruned,
                input_shape,
                PruneSettings(
                    ratio=settings.ratio, importance=settings.importance, round_to=settings.round_to
                ),
                grad_fn=grad_fn,
            )
        except CompressError as exc:
            raise CompressError(
                f"{exc}. For this teacher set method_args.prune.mode: unstructured"
            ) from None
        facts["importance"] = settings.importance
        facts["steps"] = len(record["history"])
    pruned.requires_grad_(False)
    pruned.eval()
    return pruned, facts


def use_batch_statistics(model: nn.Module) -> None:
    """Make every BatchNorm of `model` use batch statistics, as the released code's copy does.

    The layers go to train mode with momentum 0, so their running statistics stay untouched.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
            m.momentum = 0.0


def network_facts(
    net: nn.Module, input_shape: tuple[int, int, int], eval_loader: Any
) -> dict[str, Any]:
    """Parameters (all and non-zero), MACs and test top-1 of a network."""
    from compress.engine.metrics import evaluate
    from compress.models import count_params
    from compress.models.stats import count_macs

    return {
        "params": count_params(net),
        "nonzero_params": sum(int((p != 0).sum()) for p in net.parameters()),
        "macs": count_macs(net, input_shape),
        "top1": evaluate(net, eval_loader)["top1"] if eval_loader is not None else None,
    }
