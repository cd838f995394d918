"""``at``: attention transfer (Zagoruyko & Komodakis 2017), as mdistiller ships it.

At every stage, the spatial attention map (mean over channels of |a|^p, L2-normalised) of the
student matches the teacher's by mean squared error; maps of different sizes are pooled to the
smaller. No connector is needed: attention maps have no channel axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, MethodSpec
from compress.distill.feature_losses import at_loss
from compress.distill.features import FeatureDistiller, stages_of
from compress.errors import CompressError


@dataclass
class ATSettings:
    """Attributes: ce_weight; weight (mdistiller: 1000); p (the power, 2)."""

    ce_weight: float = 1.0
    weight: float = 1000.0
    p: float = 2.0


class AT(FeatureDistiller):
    """Match spatial attention maps at every stage."""

    def __init__(self, student, teacher, s_names, t_names, settings) -> None:
        super().__init__(student, teacher, s_names, t_names)
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        _, f_t = self.teacher_forward(x)
        ce = F.cross_entropy(logits, y)
        at = at_loss(self.student_features(), f_t, self.s.p)
        loss = self.s.ce_weight * ce + self.s.weight * at
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "at": at.detach()}


def _build(student, teacher, settings: ATSettings, ctx) -> AT:
    s_names, t_names = stages_of(student, "student"), stages_of(teacher, "teacher")
    if len(s_names) != len(t_names):
        n = min(len(s_names), len(t_names))
        if n < 1:
            raise CompressError("at needs at least one stage in the student and the teacher")
        s_names, t_names = s_names[-n:], t_names[-n:]  # the deepest stages pair up
    return AT(student, teacher, s_names, t_names, settings)


METHODS.add(
    "at",
    MethodSpec(ATSettings, _build, summary="Attention transfer: spatial attention at every stage"),
)
