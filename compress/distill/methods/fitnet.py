"""``fitnet``: FitNets hints (Romero et al. 2015), as mdistiller ships them.

CE plus the MSE between the teacher's middle-stage feature and the student's, passed through a
trained regressor, mdistiller's (and RepDistiller's) ``ConvReg``: a conv + BN + ReLU whose conv
maps the student's size onto the teacher's — 3×3 stride 2 for a map twice as large, a 4×4
stride-2 transposed conv for one half as large, a (1 + Δ)-sized conv otherwise. A size it cannot
map (smaller by another factor) falls back to a 1×1 conv with the maps average-pooled to the
smaller (our extension). The regressor trains with the student and is not part of the saved
student.
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


def conv_reg(s_shape: tuple[int, ...], t_shape: tuple[int, ...]) -> nn.Module:
    """Mdistiller's ``ConvReg`` from a (C, H, W) student map to a teacher map.

    As there, the conv keeps its bias (``nn.Conv2d`` default) before the BatchNorm.
    """
    (s_c, s_h, s_w), (t_c, t_h, t_w) = s_shape[-3:], t_shape[-3:]
    if s_h == 2 * t_h:
        conv: nn.Module = nn.Conv2d(s_c, t_c, 3, stride=2, padding=1)
    elif s_h * 2 == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, 4, stride=2, padding=1)
    elif s_h >= t_h and s_w >= t_w:
        conv = nn.Conv2d(s_c, t_c, (1 + s_h - t_h, 1 + s_w - t_w))
    else:  # not in ConvReg: pooled to the smaller map in `FitNet.forward`
        conv = nn.Conv2d(s_c, t_c, 1)
    return nn.Sequential(conv, nn.BatchNorm2d(t_c), nn.ReLU(inplace=False))


def _build(student, teacher, settings: FitNetSettings, ctx) -> FitNet:
    s_stages, t_stages = stages_of(student, "student"), stages_of(teacher, "teacher")
    pick = settings.hint_stage
    s_name = s_stages[len(s_stages) // 2 if pick is None else pick]
    t_name = t_stages[len(t_stages) // 2 if pick is None else pick]
    shape = input_shape_of(ctx)
    (s_shape,) = probe_shapes(student, (s_name,), shape)
    (t_shape,) = probe_shapes(teacher, (t_name,), shape)
    regressor = conv_reg(s_shape, t_shape)
    return FitNet(student, teacher, s_name, t_name, regressor, settings)


METHODS.add(
    "fitnet",
    MethodSpec(
        FitNetSettings, _build, summary="FitNets: MSE hint at the middle stage via a regressor"
    ),
)
