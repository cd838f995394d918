"""``dist``: DIST (Huang et al. 2022), Pearson correlation inter- and intra-class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.losses import dist_loss


@dataclass
class DISTSettings:
    """Attributes: temperature; ce_weight; kd_weight; beta (inter) and gamma (intra) inside."""

    temperature: float = 4.0
    ce_weight: float = 1.0
    kd_weight: float = 2.0
    beta: float = 1.0
    gamma: float = 1.0


class DIST(Distiller):
    """Match correlations of probability vectors rather than their values."""

    def __init__(self, student, teacher, settings: DISTSettings) -> None:
        super().__init__(student, teacher)
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        kd = dist_loss(
            logits, self.teacher_logits(x), self.s.temperature, beta=self.s.beta, gamma=self.s.gamma
        )
        loss = self.s.ce_weight * ce + self.s.kd_weight * kd
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "dist": kd.detach()}


METHODS.add(
    "dist",
    MethodSpec(
        DISTSettings,
        lambda st, te, s, ctx: DIST(st, te, s),
        summary="DIST: 1 − Pearson, inter + intra class",
    ),
)
