"""The extra augmented view of a batch that R2KD distils on (and KD/DIST can, for ablations).

One mixing coefficient, box or hole per batch, as R2KD's released code; reproducible from
(seed, epoch). The student sees the view with no cross-entropy: the teacher's output on the
augmented image is its target (the Good-DA-in-KD protocol).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from compress.data import augment as aug

#: The extra views a method may ask for.
ViewKind = Literal["cutmix", "mixup", "cutout", "autoaugment", "cutmixpick", "none"]


class ExtraView:
    """Builds the augmented copy of a batch on its device.

    Args:
        kind: ``cutmix``, ``mixup``, ``cutout``, ``autoaugment``, ``cutmixpick`` or ``none``.
        seed: run seed; the stream also depends on the epoch (`set_epoch`).
        mean: the data's normalisation mean (AutoAugment works on de-normalised images).
        std: the data's normalisation std.
        cutmix_alpha: CutMix λ ~ Beta(α, α).
        mixup_alpha: MixUp λ ~ Beta(α, α).
        cutout_size: Cutout hole side (``None``: 8, or 16 for inputs of 64 px and more).
        pick: how many mixed images ``cutmixpick`` keeps.
    """

    def __init__(
        self,
        kind: str,
        *,
        seed: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        cutmix_alpha: float = 1.0,
        mixup_alpha: float = 0.2,
        cutout_size: int | None = None,
        pick: int = 64,
    ) -> None:
        self.kind = kind
        self.seed = seed
        self.mean, self.std = tuple(mean), tuple(std)
        self.cutmix_alpha, self.mixup_alpha = cutmix_alpha, mixup_alpha
        self.cutout_size, self.pick = cutout_size, pick
        self._epoch = 0
        self._gen: torch.Generator | None = None
        self._host: torch.Generator | None = None

    @property
    def enabled(self) -> bool:
        """Whether there is an extra view at all."""
        return self.kind != "none"

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of `epoch`."""
        self._epoch = epoch
        self._gen = None  # re-seeded lazily on the right device

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            seed = self.seed * 7_919 + self._epoch + 1
            self._gen = torch.Generator(device=device).manual_seed(seed)
            # the scalar draws (λ, a box's centre) on the host: no device→host copy a step
            # (on the CPU the same generator, so CPU runs draw exactly what they drew before)
            self._host = self._gen if device.type == "cpu" else torch.Generator().manual_seed(seed)
        return self._gen

    def __call__(
        self, x: torch.Tensor, teacher_logits: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """The augmented copy of `x` (``cutmixpick`` asks `teacher_logits` on the clean batch)."""
        g = self._generator(x.device)
        if self.kind == "cutmix":
            return aug.cutmix(x, self.cutmix_alpha, g, self._host)
        if self.kind == "cutmixpick":
            return aug.entropy_pick(
                aug.cutmix(x, self.cutmix_alpha, g, self._host), teacher_logits(x), self.pick
            )
        if self.kind == "mixup":
            return aug.mixup(x, self.mixup_alpha, g, self._host)
        if self.kind == "cutout":
            size = self.cutout_size or (16 if min(x.shape[-2:]) >= 64 else 8)
            return aug.cutout(x, size, g, self._host)
        if self.kind == "autoaugment":
            return aug.autoaugment(x, self.mean, self.std)
        raise ValueError(f"no extra view of kind {self.kind!r}")


def view_for(settings: object, ctx: object) -> ExtraView:
    """The `ExtraView` a method's settings ask for (``augment``, ``cutmix_alpha``, ...)."""
    info = ctx.info  # type: ignore[attr-defined]
    return ExtraView(
        getattr(settings, "augment", "none"),
        seed=ctx.seed,  # type: ignore[attr-defined]
        mean=info.mean,
        std=info.std,
        cutmix_alpha=getattr(settings, "cutmix_alpha", 1.0),
        mixup_alpha=getattr(settings, "mixup_alpha", 0.2),
        cutout_size=getattr(settings, "cutout_size", None),
        pick=getattr(settings, "pick", 64),
    )
