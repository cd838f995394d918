"""``fsp``: flow of solution procedure (Yim et al. 2017), as RepDistiller ships it.

The Gram ("FSP") matrix between consecutive stage outputs, ``G = F_i·F_{i+1}ᵀ / (H·W)`` (the
larger map pooled to the smaller's size), matched by mean squared error. A student stage whose
channels differ from the teacher's gets a 1×1 conv + BN connector. With ``init_epochs: N`` the
first N epochs train the FSP loss alone and the rest plain CE, as RepDistiller's init phase;
with 0 (default) the FSP term is added to CE throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, MethodSpec
from compress.distill.feature_losses import fsp_loss
from compress.distill.features import (
    FeatureDistiller,
    connector,
    input_shape_of,
    probe_shapes,
    stages_of,
)
from compress.errors import CompressError


@dataclass
class FSPSettings:
    """Attributes: ce_weight; weight (RepDistiller: 50); init_epochs (FSP-only phase, then CE)."""

    ce_weight: float = 1.0
    weight: float = 50.0
    init_epochs: int = 0


class FSP(FeatureDistiller):
    """Match the flow between consecutive stages."""

    def __init__(self, student, teacher, s_names, t_names, connectors, settings) -> None:
        super().__init__(student, teacher, s_names, t_names)
        self.connectors = nn.ModuleList(connectors)
        self.s = settings
        self.phase = "joint"

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        if self.s.init_epochs:
            self.phase = "init" if epoch < self.s.init_epochs else "ce"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if self.phase == "ce":
            return {"loss": ce, "logits": logits, "ce": ce.detach()}
        f_s = [c(f) for c, f in zip(self.connectors, self.student_features())]
        _, f_t = self.teacher_forward(x)
        fsp = fsp_loss(f_s, f_t)
        if self.phase == "init":
            loss = self.s.weight * fsp
        else:
            loss = self.s.ce_weight * ce + self.s.weight * fsp
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "fsp": fsp.detach()}


def _build(student, teacher, settings: FSPSettings, ctx) -> FSP:
    s_names, t_names = stages_of(student, "student"), stages_of(teacher, "teacher")
    if len(s_names) != len(t_names):
        raise CompressError(
            f"fsp pairs stages one to one, but the student has {len(s_names)} stages and the "
            f"teacher {len(t_names)}; pick a teacher of the same family"
        )
    shape = input_shape_of(ctx)
    s_shapes = probe_shapes(student, s_names, shape)
    t_shapes = probe_shapes(teacher, t_names, shape)
    connectors = [connector(s, t) for s, t in zip(s_shapes, t_shapes)]
    return FSP(student, teacher, s_names, t_names, connectors, settings)


METHODS.add(
    "fsp",
    MethodSpec(FSPSettings, _build, summary="FSP: Gram matrices between consecutive stages"),
)
