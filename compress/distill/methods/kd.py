"""``kd``: Hinton et al. (2015), with RepDistiller/mdistiller's CIFAR weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.losses import kd_loss


@dataclass
class KDSettings:
    """Attributes: temperature T; ce_weight γ; kd_weight α in ``γ·CE + α·T²·KL``."""

    temperature: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9


class KD(Distiller):
    """Match the teacher's temperature-softened probabilities with KL divergence."""

    def __init__(self, student, teacher, settings: KDSettings) -> None:
        super().__init__(student, teacher)
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        kd = kd_loss(logits, self.teacher_logits(x), self.s.temperature)
        loss = self.s.ce_weight * ce + self.s.kd_weight * kd
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "kd": kd.detach()}


METHODS.add(
    "kd",
    MethodSpec(
        KDSettings,
        lambda st, te, s, ctx: KD(st, te, s),
        summary="Hinton KD: T²·KL on softened logits",
    ),
)
