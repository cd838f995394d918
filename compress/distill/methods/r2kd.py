"""``r2kd``: Robustness-Reinforced KD (Kim et al., IEEE TKDE 2024).

The target is a blend of the teacher's logits and those of a pruned, never-retrained copy of
it. The student matches that target with a correlation distance, on the clean batch and on one
extra augmented view. The distance has a value term (uncentred correlation of probability
vectors, inter- and intra-class) and a rank term (1 − Spearman of the class orderings).
Cross-entropy applies to the clean batch only. ``preset: faithful`` switches every setting to
what the authors' released code does. See docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, DistillContext, Distiller, MethodSpec
from compress.distill.losses import correlation_value_loss, spearman_rank_loss
from compress.distill.teachers import (
    WARN_DROP,
    TeacherPruning,
    blend_logits,
    prepare_pruned_copy,
    use_batch_statistics,
)
from compress.distill.views import ExtraView, ViewKind, view_for


@dataclass
class R2KDSettings:
    """R2KD's settings (defaults: the toolkit's; ``preset: faithful``: the released code's).

    Attributes:
        temperature: softmax temperature T for both terms.
        ce_weight: weight of cross-entropy on the clean batch.
        alpha: weight of the value term ``T²·(d_inter + d_intra)``.
        beta: weight of the rank term ``1 − Spearman``.
        blend: teacher weight w in the target ``w·z_T + (1−w)·z_P``.
        centered: Pearson (true) instead of the released code's uncentred correlation.
        rank: ``soft`` (differentiable, so the term trains) or ``hard`` (double argsort, no
            gradient, as released).
        soft_rank: ``permutahedron`` (Blondel et al. 2020: a projection onto the permutahedron
            by a sort and an isotonic regression, O(C log C)) or ``pairwise`` (a sum of
            sigmoids over every pair, O(C²), this toolkit's earlier soft rank).
        rank_strength: ``pairwise``: the sigmoid's temperature, in per-row standard deviations.
        rank_pool: ``permutahedron``: the regularisation ε in units of the row's mean spacing
            between consecutive sorted scores (1: scores closer than the average spacing pool
            into a shared soft rank); C-independent.
        augment: the extra view: ``cutmix``, ``mixup``, ``cutout``, ``autoaugment``,
            ``cutmixpick`` (CutMix, then keep the `pick` mixed images whose clean originals the
            teacher is least sure of, as the released code) or ``none``.
        pick: how many mixed images ``cutmixpick`` keeps (the released code: 64).
        cutmix_alpha: CutMix λ ~ Beta(α, α).
        mixup_alpha: MixUp λ ~ Beta(α, α).
        cutout_size: Cutout hole side in pixels (``null``: 8, or 16 for inputs of 64 px and more).
        prune: how the pruned teacher copy is made.
    """

    temperature: float = 4.0
    ce_weight: float = 1.0
    alpha: float = 2.0
    beta: float = 2.0
    blend: float = 0.7
    centered: bool = False
    rank: Literal["soft", "hard"] = "soft"
    soft_rank: Literal["permutahedron", "pairwise"] = "permutahedron"
    rank_strength: float = 0.1
    rank_pool: float = 1.0
    augment: ViewKind = "cutmix"
    pick: int = 64
    cutmix_alpha: float = 1.0
    mixup_alpha: float = 0.2
    cutout_size: int | None = None
    prune: TeacherPruning = field(default_factory=TeacherPruning)

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {self.blend}")
        if self.pick < 1:
            raise ValueError(f"pick must be ≥ 1, got {self.pick}")


#: Every switch of docs/methods.md's R2KD table set to the authors' released code.
FAITHFUL = {
    "temperature": 4.0,
    "ce_weight": 1.0,
    "alpha": 2.0,
    "beta": 2.0,
    "blend": 0.7,
    "centered": False,
    "rank": "hard",
    "augment": "cutmix",
    "cutmix_alpha": 1.0,
    "prune": {"mode": "unstructured", "ratio": 0.1, "bn": "batch", "recalibrate": 0},
}
#: What the faithful preset sets outside the method: the released code trains in fp32.
FAITHFUL_ENGINE = {"amp": "none"}


class R2KD(Distiller):
    """Correlation-distance KD from a blend of the teacher and its pruned copy."""

    frozen = ("teacher", "pruned")

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        pruned: nn.Module,
        settings: R2KDSettings,
        view: ExtraView,
    ) -> None:
        super().__init__(student, teacher)
        self.pruned = pruned
        self.s = settings
        self.view = view

    def train(self, mode: bool = True) -> R2KD:
        """Train/eval mode; the pruned copy keeps batch statistics when ``prune.bn: batch``."""
        super().train(mode)
        if self.s.prune.bn == "batch":
            use_batch_statistics(self.pruned)
        return self

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self.view.set_epoch(epoch)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The blended logits ``w·z_T + (1−w)·z_P``."""
        with torch.inference_mode():
            z = blend_logits(self.teacher(x), self.pruned(x), self.s.blend)
        return z.clone()  # a normal tensor: inference tensors cannot be saved for backward

    def targets(self, x: torch.Tensor, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The blended targets of the clean batch and its view, with the frozen networks run once.

        Networks in eval mode compute each image on its own, so the two views go through them as
        one batch (one call instead of two). A copy with ``bn: batch`` (the released code's)
        normalises over its batch, so it takes each view on its own, as there.
        """
        n = len(x)
        with torch.inference_mode():
            z_t = self.teacher(torch.cat([x, xa]))
            if self.s.prune.bn == "batch":
                z_p = torch.cat([self.pruned(x), self.pruned(xa)])
            else:
                z_p = self.pruned(torch.cat([x, xa]))
            z = blend_logits(z_t, z_p, self.s.blend)
        z = z.clone()
        return z[:n], z[n:]

    def distance(
        self, logits_s: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted value term, weighted rank term)."""
        s = self.s
        value = s.alpha * correlation_value_loss(
            logits_s, target, s.temperature, centered=s.centered
        )
        rank = s.beta * spearman_rank_loss(
            logits_s,
            target,
            s.temperature,
            rank=s.rank,
            strength=s.rank_strength,
            method=s.soft_rank,
            pool=s.rank_pool,
        )
        return value, rank

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if not self.view.enabled:
            value, rank = self.distance(logits, self.target(x))
        else:
            xa = self.view(x, self.teacher_logits)
            z, za = self.targets(x, xa)
            value, rank = self.distance(logits, z)
            v2, r2 = self.distance(self.model(xa), za)
            value, rank = value + v2, rank + r2
        loss = self.s.ce_weight * ce + value + rank
        return {
            "loss": loss,
            "logits": logits,
            "ce": ce.detach(),
            "value": value.detach(),
            "rank": rank.detach(),
        }


def _build(
    student: nn.Module, teacher: nn.Module, settings: R2KDSettings, ctx: DistillContext
) -> R2KD:
    info = ctx.info
    shape = (info.in_channels, *info.input_size)
    grad_fn = None
    if ctx.sample_batch is not None:
        xb, yb = (t.cpu() for t in ctx.sample_batch)

        def grad_fn(model: nn.Module) -> None:
            F.cross_entropy(model(xb), yb).backward()

    p = settings.prune
    pruned, row = prepare_pruned_copy(
        teacher,
        p,
        shape,
        train_batches=ctx.train_loader,
        eval_loader=ctx.eval_loader,
        holdout=ctx.holdout,
        grad_fn=grad_fn,
    )
    if p.bn == "batch":
        use_batch_statistics(pruned)
    ctx.report["pruned_teacher"] = row
    ctx.log(describe_copy(row, p))
    teacher_top1 = (ctx.report.get("teacher") or {}).get("top1")
    if teacher_top1 is not None and row.get("top1") is not None:
        drop = teacher_top1 - row["top1"]
        if drop > WARN_DROP:
            ctx.log(
                f"warning: the pruned teacher copy is {100 * drop:.1f} points below the teacher; "
                "R2KD expects a slightly worse copy: lower method_args.prune.ratio or set "
                "method_args.prune.target_drop (e.g. 0.02)"
            )
    return R2KD(student, teacher, pruned, settings, view_for(settings, ctx))


def describe_copy(row: dict, p: TeacherPruning) -> str:
    """One log line: the copy's size, sparsity, MACs and top-1 in the mode it is used in."""
    how = (
        f"structured {p.importance}"
        if p.mode == "structured"
        else f"unstructured, {100 * row['zero_fraction']:.1f}% of conv/linear weights zeroed"
    )
    bn = f"BN {p.bn}"
    if p.bn == "eval":
        bn += (
            f", recalibrated on {row['recalibrated_images']:,} images"
            if row["recalibrated_images"]
            else ", stale statistics"
        )
    top1 = ""
    if row.get("top1") is not None:
        top1 = f", top-1 {100 * row['top1']:.2f}% (BN {p.bn})"
        if "top1_eval_bn" in row:
            top1 += f" / {100 * row['top1_eval_bn']:.2f}% (BN eval)"
    search = ""
    if "search" in row:
        s = row["search"]
        search = f"; ratio chosen for a {100 * s['target_drop']:.1f}-point drop on {p.holdout} held-out training images"
    return (
        f"{'pruned teacher':<15} {row['params'] / 1e6:.3f} M params ({row['nonzero_params'] / 1e6:.3f} M "
        f"non-zero, {100 * row['weights_removed']:.1f}% of the teacher's weights removed), "
        f"{row['macs'] / 1e6:.2f} M MACs{top1} ({how}, ratio {row['ratio']:.3g}, {bn}{search})"
    )


METHODS.add(
    "r2kd",
    MethodSpec(
        R2KDSettings,
        _build,
        presets={"faithful": FAITHFUL},
        engine_presets={"faithful": FAITHFUL_ENGINE},
        summary="R2KD: correlation distance (value + rank) to a blend of the teacher and its pruned copy",
    ),
)
