"""``r2kd``: Robustness-Reinforced KD (Kim et al., IEEE TKDE 2024).

The target is a blend of the teacher's logits and those of a pruned, never-retrained copy of
it. The student matches that target with a correlation distance, on the clean batch and on one
extra augmented view. The distance has a value term (uncentred correlation of probability
vectors, inter- and intra-class) and a rank term (1 − Spearman of the class orderings).
Cross-entropy applies to the clean batch only. ``preset: faithful`` switches every setting to
what the authors' released code does. See METHODS.md §1 and docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from compress.data import augment as aug
from compress.distill.base import METHODS, DistillContext, Distiller, MethodSpec
from compress.distill.losses import correlation_value_loss, spearman_rank_loss
from compress.distill.teachers import (
    TeacherPruning,
    blend_logits,
    make_pruned_copy,
    network_facts,
    use_batch_statistics,
)


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
        rank_strength: temperature of the soft rank, in per-row standard deviations.
        augment: the extra view: ``cutmix``, ``mixup``, ``cutout``, ``autoaugment`` or ``none``.
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
    rank_strength: float = 0.1
    augment: Literal["cutmix", "mixup", "cutout", "autoaugment", "none"] = "cutmix"
    cutmix_alpha: float = 1.0
    mixup_alpha: float = 0.2
    cutout_size: int | None = None
    prune: TeacherPruning = field(default_factory=TeacherPruning)

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {self.blend}")


#: Every switch of METHODS.md §1 set to the authors' released code.
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
    "prune": {"mode": "unstructured", "ratio": 0.1, "bn": "batch"},
}


class R2KD(Distiller):
    """Correlation-distance KD from a blend of the teacher and its pruned copy."""

    frozen = ("teacher", "pruned")

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        pruned: nn.Module,
        settings: R2KDSettings,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        seed: int = 0,
    ) -> None:
        super().__init__(student, teacher)
        self.pruned = pruned
        self.s = settings
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = seed
        self._gen: torch.Generator | None = None
        self._epoch = 0

    def train(self, mode: bool = True) -> R2KD:
        """Train/eval mode; the pruned copy keeps batch statistics when ``prune.bn: batch``."""
        super().train(mode)
        if self.s.prune.bn == "batch":
            use_batch_statistics(self.pruned)
        return self

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self._epoch = epoch
        self._gen = None  # re-seeded lazily on the right device

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(
                self.seed * 7_919 + self._epoch + 1
            )
        return self._gen

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The blended logits ``w·z_T + (1−w)·z_P``."""
        return blend_logits(self.teacher(x), self.pruned(x), self.s.blend)

    def extra_view(self, x: torch.Tensor) -> torch.Tensor:
        """The augmented copy of the batch."""
        g = self._generator(x.device)
        kind = self.s.augment
        if kind == "cutmix":
            return aug.cutmix(x, self.s.cutmix_alpha, g)
        if kind == "mixup":
            return aug.mixup(x, self.s.mixup_alpha, g)
        if kind == "cutout":
            size = self.s.cutout_size or (16 if min(x.shape[-2:]) >= 64 else 8)
            return aug.cutout(x, size, g)
        return aug.autoaugment(x, self.mean, self.std)

    def distance(
        self, logits_s: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted value term, weighted rank term)."""
        s = self.s
        value = s.alpha * correlation_value_loss(
            logits_s, target, s.temperature, centered=s.centered
        )
        rank = s.beta * spearman_rank_loss(
            logits_s, target, s.temperature, rank=s.rank, strength=s.rank_strength
        )
        return value, rank

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        value, rank = self.distance(logits, self.target(x))
        if self.s.augment != "none":
            xa = self.extra_view(x)
            v2, r2 = self.distance(self.model(xa), self.target(xa))
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

    device = next(teacher.parameters()).device
    pruned, facts = make_pruned_copy(teacher.cpu(), settings.prune, shape, grad_fn=grad_fn)
    teacher.to(device)
    pruned.to(device)
    if settings.prune.bn == "batch":
        use_batch_statistics(pruned)
    row = {**network_facts(pruned, shape, ctx.eval_loader), **facts}
    pruned.eval()
    ctx.report["pruned_teacher"] = row
    how = (
        f"structured {settings.prune.importance}"
        if settings.prune.mode == "structured"
        else f"unstructured, {100 * facts['zero_fraction']:.1f}% of weights zeroed"
    )
    top1 = f", top-1 {100 * row['top1']:.2f}%" if row["top1"] is not None else ""
    ctx.log(
        f"{'pruned teacher':<15} {row['params'] / 1e6:.3f} M params ({row['nonzero_params'] / 1e6:.3f} M non-zero), "
        f"{row['macs'] / 1e6:.2f} M MACs{top1} ({how}, ratio {settings.prune.ratio}, BN {settings.prune.bn})"
    )
    return R2KD(student, teacher, pruned, settings, mean=info.mean, std=info.std, seed=ctx.seed)


METHODS.add(
    "r2kd",
    MethodSpec(
        R2KDSettings,
        _build,
        presets={"faithful": FAITHFUL},
        summary="R2KD: correlation distance (value + rank) to a blend of the teacher and its pruned copy",
    ),
)
