"""Features for the feature- and relation-based methods, taken with forward hooks.

A model's *stages* (the outputs at each resolution) and its *embedding* (the input of its
classifier) come from the model registry (``stages=``, ``embedding=``), one definition per
family, so any registered network is a student or teacher unchanged. Connectors that bridge a
student's feature to the teacher's train with the student but live in the distiller, never in
the saved student file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compress.distill.base import Distiller
from compress.errors import CompressError
from compress.models.features import FeatureHooks


def stages_of(model: nn.Module, role: str) -> tuple[str, ...]:
    """The registered stage module names of `model` (its header names the architecture)."""
    from compress.models import model_info

    arch = model.compress_header.arch
    stages = model_info(arch).get("stages")
    if not stages:
        raise CompressError(
            f"the {role} '{arch}' has no stage definition, so feature-based methods cannot read "
            "its features; use a logit method (kd, dist, dkd, r2kd) or a zoo architecture"
        )
    return tuple(stages)


def embedding_of(model: nn.Module, role: str) -> str:
    """The registered classifier module of `model`, whose input is the pooled embedding."""
    from compress.models import model_info

    arch = model.compress_header.arch
    name = model_info(arch).get("embedding")
    if not name:
        raise CompressError(
            f"the {role} '{arch}' has no embedding definition; relation methods need one"
        )
    return name


class FeatureDistiller(Distiller):
    """A distiller that reads named features of the student and the teacher on every forward.

    Subclasses name what they read (`student_names`, `teacher_names`, `inputs`) and compute
    their loss from `self.student_features` / `teacher_features(x)`.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        student_names: tuple[str, ...],
        teacher_names: tuple[str, ...],
        *,
        inputs: bool = False,
    ) -> None:
        super().__init__(student, teacher)
        self.student_names, self.teacher_names = student_names, teacher_names
        self._s_hooks = FeatureHooks(student, student_names, inputs=inputs)
        self._t_hooks = FeatureHooks(teacher, teacher_names, inputs=inputs)

    def student_features(self) -> list[torch.Tensor]:
        """The student's features of its latest forward pass, in `student_names` order."""
        return [self._s_hooks.features[n] for n in self.student_names]

    @torch.no_grad()
    def teacher_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's logits and features on `x`."""
        logits = self.teacher(x)
        return logits, [self._t_hooks.features[n] for n in self.teacher_names]


@torch.no_grad()
def probe_shapes(
    model: nn.Module, names: tuple[str, ...], input_shape: tuple[int, ...], *, inputs: bool = False
) -> list[tuple[int, ...]]:
    """The shapes (without batch) of the named features for one input of `input_shape`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with FeatureHooks(model, names, inputs=inputs) as hooks:
        model(torch.zeros(2, *input_shape, device=device))
        shapes = [tuple(hooks.features[n].shape[1:]) for n in names]
    model.train(was_training)
    return shapes


def connector(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Module:
    """A 1×1 conv + BN from the student's channels to the teacher's (identity if they agree)."""
    cs, ct = student_shape[0], teacher_shape[0]
    if cs == ct:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cs, ct, 1, bias=False), nn.BatchNorm2d(ct))


def input_shape_of(ctx: Any) -> tuple[int, int, int]:
    """(C, H, W) of the data a distillation context trains on."""
    info = ctx.info
    return (info.in_channels, *info.input_size)
