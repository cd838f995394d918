"""Accuracy and evaluation over a loader."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def topk_correct(
    logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[int]:
    """How many samples have their label among the top-k logits, for each k (capped at C)."""
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(labels[:, None])
    return [int(hit[:, : min(k, maxk)].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Top-1, top-5 (fractions in 0–1) and mean cross-entropy of `model` over `loader`."""
    was_training = model.training
    model.eval()
    n = c1 = c5 = 0
    loss = 0.0
    try:
        for x, y in loader:
            ctx = (
                torch.autocast(x.device.type, dtype=autocast_dtype)
                if autocast_dtype is not None
                else contextlib.nullcontext()
            )
            with ctx:
                logits = model(x)
            logits = logits.float()
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            a, b = topk_correct(logits, y)
            c1, c5, n = c1 + a, c5 + b, n + len(y)
    finally:
        model.train(was_training)
    from compress.distributed import all_reduce_sum

    c1, c5, loss, n = all_reduce_sum([c1, c5, loss, n])  # a sharded test split: every rank's share
    n = int(n)
    if n == 0:
        return {"top1": 0.0, "top5": 0.0, "loss": float("nan"), "samples": 0}
    return {"top1": c1 / n, "top5": c5 / n, "loss": loss / n, "samples": n}


def model_facts(
    model: nn.Module, input_shape: tuple[int, ...], loader: Iterable[Any] | None = None
) -> dict[str, Any]:
    """The one place a model's facts are computed: parameters (all and non-zero), MACs, top-1.

    Used by `compress prune`'s before/after table, distillation's teacher and pruned-copy
    report, and `compress benchmark`. ``top1`` is ``None`` without a `loader`.
    """
    from compress.models import count_params
    from compress.models.stats import count_macs

    return {
        "params": count_params(model),
        "nonzero_params": sum(int((p != 0).sum()) for p in model.parameters()),
        "macs": count_macs(model, input_shape),
        "top1": evaluate(model, loader)["top1"] if loader is not None else None,
    }


@torch.no_grad()
def per_class_top1(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int
) -> list[float]:
    """Top-1 of every class on `loader` (index = class; ``nan`` for a class with no sample).

    On a sharded test split the counts of every rank are summed.
    """
    from compress.distributed import all_reduce_sum

    was_training = model.training
    model.eval()
    hits = [0.0] * num_classes
    seen = [0.0] * num_classes
    try:
        for x, y in loader:
            right = model(x).argmax(1) == y
            for c in y.unique().tolist():
                mask = y == c
                seen[c] += float(mask.sum())
                hits[c] += float(right[mask].sum())
    finally:
        model.train(was_training)
    hits, seen = all_reduce_sum(hits), all_reduce_sum(seen)
    return [h / s if s else float("nan") for h, s in zip(hits, seen)]
