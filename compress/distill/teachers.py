"""Teacher preparation for R2KD: a pruned copy of the teacher (never retrained) and the blend."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from compress.engine.metrics import model_facts
from compress.errors import CompressError


@dataclass
class TeacherPruning:
    """How R2KD's pruned teacher copy is made.

    Attributes:
        mode: ``structured`` (torch-pruning channel pruning; the toolkit's default) or
            ``unstructured`` (L1 magnitude masking of every Conv2d/Linear weight per layer, as the
            authors' code).
        ratio: fraction of channels (structured) or weights per layer (unstructured) removed.
            Ignored when `target_drop` is set.
        importance: channel-importance criterion for ``structured`` (see `compress.prune`).
        round_to: keep channel counts multiples of this (``null``: exact ratio; the copy is never
            deployed, so rounding buys nothing here).
        bn: ``eval`` uses the copy's running BatchNorm statistics; ``batch`` uses each batch's
            statistics (the released code leaves the copy in train mode).
        recalibrate: with ``bn: eval``, re-estimate the copy's BatchNorm statistics on this many
            training batches right after pruning (0 = keep the teacher's, stale, statistics).
            Removing channels shifts what every later BatchNorm sees; without this a structured
            copy often collapses to a few classes.
        target_drop: choose `ratio` by bisection so the copy's top-1 lands this far (0–1, e.g.
            0.02) below the teacher's, both measured on `holdout` training images (never the
            test set), in the BatchNorm mode the copy is used in.
        holdout: training images (a fixed, class-balanced slice, no augmentation) on which
            `target_drop` is measured.
    """

    mode: Literal["structured", "unstructured"] = "structured"
    ratio: float = 0.1
    importance: str = "l1"
    round_to: int | None = None
    bn: Literal["eval", "batch"] = "eval"
    recalibrate: int = 16
    target_drop: float | None = None
    holdout: int = 1000

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"prune.ratio must be in (0, 1), got {self.ratio}")
        if self.recalibrate < 0:
            raise ValueError(f"prune.recalibrate must be ≥ 0 batches, got {self.recalibrate}")
        if self.target_drop is not None and not 0.0 < self.target_drop < 1.0:
            raise ValueError(f"prune.target_drop must be in (0, 1), got {self.target_drop}")
        if self.holdout < 1:
            raise ValueError(f"prune.holdout must be ≥ 1 image, got {self.holdout}")


#: A copy that falls this far (0–1) below its teacher is reported with a warning.
WARN_DROP = 0.10
#: Bisection steps of `target_drop` and the ratio range it searches.
SEARCH_STEPS = 8
SEARCH_RANGE = (0.005, 0.9)


def blend_logits(z_teacher: torch.Tensor, z_pruned: torch.Tensor, weight: float) -> torch.Tensor:
    """``w·z_T + (1−w)·z_P``: the target R2KD distils from."""
    return weight * z_teacher + (1.0 - weight) * z_pruned


def make_pruned_copy(
    teacher: nn.Module,
    settings: TeacherPruning,
    input_shape: tuple[int, int, int],
    *,
    grad_fn: Any = None,
    batches: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A pruned deep copy of `teacher` (the teacher itself is untouched) and what was done.

    The copy stays on the teacher's device. With ``bn: eval`` and ``recalibrate > 0`` its
    BatchNorm statistics are re-estimated on `batches` (training batches on that device).

    Returns:
        ``(copy, facts)``: ``mode``, ``ratio``, ``weights_removed`` (fraction of the teacher's
        weights that are gone or zero), ``recalibrated_images`` and, for unstructured masking,
        ``zero_fraction``.
    """
    from compress.models import count_params
    from compress.prune import PruneSettings, magnitude_mask_, prune_channels
    from compress.prune.structured import recalibrate_bn

    device = next(teacher.parameters()).device
    pruned = copy.deepcopy(teacher).cpu()
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
        facts["weights_removed"] = zeroed / max(1, count_params(teacher))
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
        facts["weights_removed"] = 1.0 - count_params(pruned) / count_params(teacher)
    pruned.to(device)
    pruned.requires_grad_(False)
    seen = 0
    if settings.bn == "eval" and settings.recalibrate and batches is not None:
        with torch.no_grad():
            seen = recalibrate_bn(pruned, batches, settings.recalibrate)
    facts["recalibrated_images"] = seen
    pruned.eval()
    return pruned, facts


class BatchStatistics(nn.Module):
    """A view of a network whose BatchNorm layers use batch statistics even in eval mode.

    `compress.engine.evaluate` puts the model it measures in eval mode; wrapped in this view,
    a copy used with ``bn: batch`` is measured the way it is used in training.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def train(self, mode: bool = True) -> BatchStatistics:  # noqa: D102
        super().train(mode)
        use_batch_statistics(self.net)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


def top1_in_mode(net: nn.Module, loader: Any, bn: str) -> float:
    """Top-1 of `net` on `loader` with BatchNorm in mode `bn` (``eval`` or ``batch``)."""
    from compress.engine.metrics import evaluate

    measured = evaluate(BatchStatistics(net) if bn == "batch" else net, loader)["top1"]
    net.eval()
    return measured


def search_ratio(
    teacher: nn.Module,
    settings: TeacherPruning,
    input_shape: tuple[int, int, int],
    holdout: Any,
    *,
    grad_fn: Any = None,
    batches: Any = None,
) -> tuple[float, list[dict[str, float]]]:
    """The ratio whose copy lands ``settings.target_drop`` below the teacher on `holdout`.

    Bisection over the ratio (the copy's accuracy falls as the ratio grows), each trial a
    fresh copy made exactly as training will use it. Returns the ratio whose measured drop came
    closest to the target, and every trial ``{ratio, top1, drop}``.
    """
    from dataclasses import replace

    target = float(settings.target_drop or 0.0)
    base = top1_in_mode(teacher, holdout, "eval")
    lo, hi = SEARCH_RANGE
    trials: list[dict[str, float]] = []
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        trial_settings = replace(settings, ratio=mid, target_drop=None)
        try:
            trial, _ = make_pruned_copy(
                teacher, trial_settings, input_shape, grad_fn=grad_fn, batches=batches
            )
        except CompressError:
            hi = mid  # a ratio that cannot be pruned is too large
            continue
        top1 = top1_in_mode(trial, holdout, settings.bn)
        trials.append({"ratio": mid, "top1": top1, "drop": base - top1})
        if base - top1 > target:
            hi = mid
        else:
            lo = mid
    if not trials:
        raise CompressError(
            "no pruning ratio could be applied to this teacher; set method_args.prune.mode: "
            "unstructured"
        )
    best = min(trials, key=lambda t: (abs(t["drop"] - target), -t["ratio"]))
    return best["ratio"], trials


def use_batch_statistics(model: nn.Module) -> None:
    """Make every BatchNorm of `model` use batch statistics, as the released code's copy does.

    The layers go to train mode with momentum 0, so their running statistics stay untouched.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
            m.momentum = 0.0


def prepare_pruned_copy(
    teacher: nn.Module,
    settings: TeacherPruning,
    input_shape: tuple[int, int, int],
    *,
    train_batches: Any = None,
    eval_loader: Any = None,
    holdout: Callable[[int], Any] | None = None,
    grad_fn: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """R2KD's teacher copy, made, recalibrated and measured the way training uses it.

    Args:
        teacher: the trained teacher (left untouched).
        settings: how to prune it.
        input_shape: (C, H, W) of one input.
        train_batches: training batches for BatchNorm recalibration.
        eval_loader: the test split, for the copy's reported top-1.
        holdout: ``holdout(n)`` gives a loader over `n` held-out training images (needed for
            ``target_drop``).
        grad_fn: gradient function for gradient-based channel importance.

    Returns:
        ``(copy, facts)``: the facts of `make_pruned_copy` plus ``params``, ``nonzero_params``,
        ``macs``, ``bn``, ``top1`` (test split, in the BatchNorm mode used), ``top1_eval_bn``
        (with ``bn: batch``: the same copy with running statistics) and, with ``target_drop``,
        ``search`` (target, the teacher's held-out top-1 and every trial).
    """
    from dataclasses import replace

    search: dict[str, Any] | None = None
    if settings.target_drop is not None:
        if holdout is None:
            raise CompressError("prune.target_drop needs held-out training images")
        held = holdout(settings.holdout)
        ratio, trials = search_ratio(
            teacher, settings, input_shape, held, grad_fn=grad_fn, batches=train_batches
        )
        search = {
            "target_drop": settings.target_drop,
            "teacher_top1_holdout": top1_in_mode(teacher, held, "eval"),
            "trials": trials,
        }
        settings = replace(settings, ratio=ratio)
    pruned, facts = make_pruned_copy(
        teacher, settings, input_shape, grad_fn=grad_fn, batches=train_batches
    )
    facts.update(model_facts(pruned, input_shape))
    facts["bn"] = settings.bn
    if eval_loader is not None:
        facts["top1"] = top1_in_mode(pruned, eval_loader, settings.bn)
        if settings.bn == "batch":
            facts["top1_eval_bn"] = top1_in_mode(pruned, eval_loader, "eval")
    if search is not None:
        facts["search"] = search
    return pruned, facts
