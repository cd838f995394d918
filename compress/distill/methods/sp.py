"""``sp``: similarity-preserving KD (Tung & Mori 2019), as mdistiller ships it.

The batch × batch similarity of the last stage's flattened features, rows L2-normalised, of the
student matches the teacher's: ‖G_s − G_t‖²_F / B². Channels and sizes may differ freely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, MethodSpec
from compress.distill.feature_losses import sp_loss
from compress.distill.features import FeatureDistiller, stages_of


@dataclass
class SPSettings:
    """Attributes: ce_weight; weight (mdistiller: 3000)."""

    ce_weight: float = 1.0
    weight: float = 3000.0


class SP(FeatureDistiller):
    """Preserve the batch's pairwise similarities at the last stage."""

    def __init__(self, student, teacher, s_name, t_name, settings) -> None:
        super().__init__(student, teacher, (s_name,), (t_name,))
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        (f_s,) = self.student_features()
        _, (f_t,) = self.teacher_forward(x)
        ce = F.cross_entropy(logits, y)
        sp = sp_loss(f_s, f_t)
        loss = self.s.ce_weight * ce + self.s.weight * sp
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "sp": sp.detach()}


def _build(student, teacher, settings: SPSettings, ctx) -> SP:
    s_name = stages_of(student, "student")[-1]
    t_name = stages_of(teacher, "teacher")[-1]
    return SP(student, teacher, s_name, t_name, settings)


METHODS.add(
    "sp",
    MethodSpec(
        SPSettings, _build, summary="Similarity-preserving KD: batch similarity, last stage"
    ),
)
