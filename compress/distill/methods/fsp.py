"""``fsp``: flow of solution procedure (Yim et al. 2017), as RepDistiller ships it.

The Gram ("FSP") matrix between consecutive feature maps, ``G = F_i·F_{i+1}ᵀ / (H·W)`` (the
larger map pooled to the smaller's size), matched by mean squared error, summed over the pairs.
The maps are RepDistiller's ``feat[:-1]``: the stem's output (the input of the first stage) and
every stage's output, so a three-stage CIFAR ResNet gives three pairs (stem→layer1,
layer1→layer2, layer2→layer3).

RepDistiller's protocol (``helper/pretrain.py:init`` and ``train_student.py``), the default:

1. an **initialisation phase** of its own ``init_epochs`` (30) epochs *before* the run: the
   unweighted FSP loss alone trains every layer of the student but its classifier, with SGD at
   the run's learning rate, momentum and weight decay, constant;
2. then the run's ``epochs`` with cross-entropy only (``weight: 0``; RepDistiller's ``-b 50``
   multiplies a zero there).

``init_epochs: 0, weight: 50`` gives the joint variant (CE + 50·FSP throughout) that this
toolkit used as its default before; ``pairs: stages`` drops the stem pair. RepDistiller refuses
students whose channels differ from the teacher's; here a 1×1 conv + BN connector bridges them
(an extension, documented in docs/methods.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.feature_losses import fsp_loss
from compress.distill.features import (
    connector,
    embedding_of,
    input_shape_of,
    probe_shapes,
    stages_of,
)
from compress.errors import CompressError
from compress.models.features import FeatureHooks


@dataclass
class FSPSettings:
    """FSP's settings (RepDistiller's protocol by default).

    Attributes:
        ce_weight: weight of the cross-entropy in the run.
        weight: weight of the FSP loss in the run (0: RepDistiller, CE only after the init).
        init_epochs: epochs of the initialisation phase before the run (30; 0 = none).
        init_weight: weight of the FSP loss in the initialisation phase (1: unweighted).
        pairs: ``stem`` (stem→stage 1 and every consecutive stage: RepDistiller's) or
            ``stages`` (consecutive stages only).
    """

    ce_weight: float = 1.0
    weight: float = 0.0
    init_epochs: int = 30
    init_weight: float = 1.0
    pairs: Literal["stem", "stages"] = "stem"

    def __post_init__(self) -> None:
        if self.init_epochs < 0:
            raise ValueError(f"init_epochs must be ≥ 0, got {self.init_epochs}")


class _Features:
    """The maps FSP pairs up: the first stage's input (the stem) and each stage's output."""

    def __init__(self, model: nn.Module, stages: tuple[str, ...], stem: bool) -> None:
        self.stages = stages
        self.stem = FeatureHooks(model, stages[:1], inputs=True) if stem else None
        self.outputs = FeatureHooks(model, stages)

    def maps(self) -> list[torch.Tensor]:
        out = [self.stem.features[self.stages[0]]] if self.stem is not None else []
        return out + [self.outputs.features[n] for n in self.stages]


class FSP(Distiller):
    """CE (+ ``weight``·FSP) after an FSP-only initialisation phase (`FSPInit`)."""

    unused_parameters = True  # the connectors train in the init phase only (weight 0 after)

    def __init__(self, student, teacher, s_names, t_names, connectors, settings) -> None:
        super().__init__(student, teacher)
        stem = settings.pairs == "stem"
        self.s_feats = _Features(student, s_names, stem)
        self.t_feats = _Features(teacher, t_names, stem)
        self.connectors = nn.ModuleList(connectors)
        self.s = settings

    def fsp(self, x: torch.Tensor) -> torch.Tensor:
        """The FSP loss of the student's latest forward pass against the teacher on `x`."""
        with torch.no_grad():
            self.teacher(x)
        f_t = self.t_feats.maps()
        f_s = [c(f) for c, f in zip(self.connectors, self.s_feats.maps())]
        return fsp_loss(f_s, f_t)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y)
        if not self.s.weight:
            return {"loss": self.s.ce_weight * ce, "logits": logits, "ce": ce.detach()}
        fsp = self.fsp(x)
        loss = self.s.ce_weight * ce + self.s.weight * fsp
        return {"loss": loss, "logits": logits, "ce": ce.detach(), "fsp": fsp.detach()}


class FSPInit(Distiller):
    """RepDistiller's initialisation phase: ``init_weight``·FSP alone, the classifier frozen."""

    unused_parameters = True  # the student's classifier gets no gradient here

    def __init__(self, main: FSP, classifier: str) -> None:
        super().__init__(main.model, main.teacher)
        object.__setattr__(self, "main", main)  # a reference, not a second copy of its modules
        self.connectors = main.connectors
        self.classifier = classifier

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter of the student but its classifier's, and the connectors'."""
        skip = f"model.{self.classifier}."
        for name, p in self.named_parameters():
            if p.requires_grad and not self._is_frozen(name) and not name.startswith(skip):
                yield p

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        fsp = self.main.fsp(x)
        return {"loss": self.main.s.init_weight * fsp, "logits": logits, "fsp": fsp.detach()}


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
    if settings.pairs == "stem":
        s_shapes = probe_shapes(student, s_names[:1], shape, inputs=True) + s_shapes
        t_shapes = probe_shapes(teacher, t_names[:1], shape, inputs=True) + t_shapes
    connectors = [connector(s, t) for s, t in zip(s_shapes, t_shapes)]
    return FSP(student, teacher, s_names, t_names, connectors, settings)


def _init_phase(task: FSP, settings: FSPSettings) -> tuple[FSPInit, int] | None:
    if not settings.init_epochs:
        return None
    return FSPInit(task, embedding_of(task.model, "student")), settings.init_epochs


METHODS.add(
    "fsp",
    MethodSpec(
        FSPSettings,
        _build,
        init_phase=_init_phase,
        summary="FSP: Gram matrices between consecutive maps, RepDistiller's init phase then CE",
    ),
)
