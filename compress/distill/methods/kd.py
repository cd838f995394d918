"""``kd``: Hinton et al. (2015), with RepDistiller/mdistiller's CIFAR weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.losses import kd_loss
from compress.distill.views import ExtraView, ViewKind, view_for


@dataclass
class KDSettings:
    """Hinton KD's settings.

    Attributes: temperature T; ce_weight γ; kd_weight α in ``γ·CE + α·T²·KL``; augment: an
    extra view distilled without CE, as R2KD's (``none`` by default; for ablations);
    cutmix_alpha.
    """

    temperature: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9
    augment: ViewKind = "none"
    cutmix_alpha: float = 1.0


class KD(Distiller):
    """Match the teacher's temperature-softened probabilities with KL divergence."""

    def __init__(self, student, teacher, settings: KDSettings, view: ExtraView) -> None:
        super().__init__(student, teacher)
        self.s = settings
        self.view = view

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self.view.set_epoch(epoch)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        kd = kd_loss(logits, self.teacher_logits(x), self.s.temperature)
        if self.view.enabled:
            xa = self.view(x, self.teacher_logits)
            kd = kd + kd_loss(self.model(xa), self.teacher_logits(xa), self.s.temperature)
        loss = self.s.ce_weight * ce + self.s.kd_weight * kd
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "kd": kd.detach()}


METHODS.add(
    "kd",
    MethodSpec(
        KDSettings,
        lambda st, te, s, ctx: KD(st, te, s, view_for(s, ctx)),
        summary="Hinton KD: T²·KL on softened logits",
    ),
)
