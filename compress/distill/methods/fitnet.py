"""``fitnet``: FitNets hints (Romero et al. 2015), as mdistiller ships them.

CE plus the MSE between the teacher's middle-stage feature and the student's, passed through a
trained regressor (1×1 conv + BN + ReLU, mdistiller's ``ConvReg``); a spatial mismatch is
bridged by average-pooling the larger map. The regressor trains with the student and is not
part of the saved student.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, MethodSpec
from compress.distill.feature_losses import hint_loss, match_spatial
from compress.distill.features import FeatureDistiller, input_shape_of, probe_shapes, stages_of


@dataclass
class FitNetSettings:
    """FitNet's settings.

    Attributes: ce_weight; feat_weight (mdistiller: 100); hint_stage (index into the stages,
    ``null``: the middle one).
    """

    ce_weight: float = 1.0
    feat_weight: float = 100.0
    hint_stage: int | None = None


class FitNet(FeatureDistiller):
    """Hint learning through a regressor."""

    def __init__(self, student, teacher, s_name, t_name, regressor, settings) -> None:
        super().__init__(student, teacher, (s_name,), (t_name,))
        self.regressor = regressor
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        (f_s,) = self.student_features()
        _, (f_t,) = self.teacher_forward(x)
        f_s, f_t = match_spatial(self.regressor(f_s), f_t)
        ce = F.cross_entropy(logits, y)
        hint = hint_loss(f_s, f_t)
        loss = self.s.ce_weight * ce + self.s.feat_weight * hint
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "hint": hint.detach()}


def _build(student, teacher, settings: FitNetSettings, ctx) -> FitNet:
    s_stages, t_stages = stages_of(student, "student"), stages_of(teacher, "teacher")
    pick = settings.hint_stage
    s_name = s_stages[len(s_stages) // 2 if pick is None else pick]
    t_name = t_stages[len(t_stages) // 2 if pick is None else pick]
    shape = input_shape_of(ctx)
    (s_shape,) = probe_shapes(student, (s_name,), shape)
    (t_shape,) = probe_shapes(teacher, (t_name,), shape)
    regressor = nn.Sequential(
        nn.Conv2d(s_shape[0], t_shape[0], 1, bias=False),
        nn.BatchNorm2d(t_shape[0]),
        nn.ReLU(inplace=False),
    )
    return FitNet(student, teacher, s_name, t_name, regressor, settings)


METHODS.add(
    "fitnet",
    MethodSpec(
        FitNetSettings, _build, summary="FitNets: MSE hint at the middle stage via a regressor"
    ),
)
