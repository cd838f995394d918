"""``dkd``: Decoupled KD (Zhao et al. 2022) with its linear warm-up."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.losses import dkd_loss


@dataclass
class DKDSettings:
    """Attributes: ce_weight; alpha (TCKD); beta (NCKD); temperature; warmup_epochs (KD ramps in)."""

    ce_weight: float = 1.0
    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    warmup_epochs: int = 20


class DKD(Distiller):
    """Target-class and non-target-class KD, weighted separately."""

    def __init__(self, student, teacher, settings: DKDSettings) -> None:
        super().__init__(student, teacher)
        self.s = settings
        self.ramp = 1.0

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self.ramp = min((epoch + 1) / max(1, self.s.warmup_epochs), 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        kd = dkd_loss(
            logits,
            self.teacher_logits(x),
            y,
            alpha=self.s.alpha,
            beta=self.s.beta,
            temperature=self.s.temperature,
        )
        loss = self.s.ce_weight * ce + self.ramp * kd
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "dkd": kd.detach()}


METHODS.add(
    "dkd",
    MethodSpec(
        DKDSettings,
        lambda st, te, s, ctx: DKD(st, te, s),
        summary="Decoupled KD: TCKD + NCKD, warm-up",
    ),
)
