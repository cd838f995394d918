"""``dist``: DIST (Huang et al. 2022), Pearson correlation inter- and intra-class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.losses import dist_loss
from compress.distill.views import ExtraView, ViewKind, view_for


@dataclass
class DISTSettings:
    """DIST's settings.

    Attributes: temperature; ce_weight; kd_weight; beta (inter) and gamma (intra) inside;
    augment: an extra view distilled without CE, as R2KD's (``none`` by default; for
    ablations); cutmix_alpha.
    """

    temperature: float = 4.0
    ce_weight: float = 1.0
    kd_weight: float = 2.0
    beta: float = 1.0
    gamma: float = 1.0
    augment: ViewKind = "none"
    cutmix_alpha: float = 1.0


class DIST(Distiller):
    """Match correlations of probability vectors rather than their values."""

    def __init__(self, student, teacher, settings: DISTSettings, view: ExtraView) -> None:
        super().__init__(student, teacher)
        self.s = settings
        self.view = view

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self.view.set_epoch(epoch)

    def _dist(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        s = self.s
        return dist_loss(logits, self.teacher_logits(x), s.temperature, beta=s.beta, gamma=s.gamma)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        kd = self._dist(x, logits)
        if self.view.enabled:
            xa = self.view(x, self.teacher_logits)
            kd = kd + self._dist(xa, self.model(xa))
        loss = self.s.ce_weight * ce + self.s.kd_weight * kd
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "dist": kd.detach()}


METHODS.add(
    "dist",
    MethodSpec(
        DISTSettings,
        lambda st, te, s, ctx: DIST(st, te, s, view_for(s, ctx)),
        summary="DIST: 1 − Pearson, inter + intra class",
    ),
)
