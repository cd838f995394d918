"""``none``: the student alone with cross-entropy (the no-KD baseline)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec


@dataclass
class NoneSettings:
    """Attributes: label_smoothing: cross-entropy label smoothing."""

    label_smoothing: float = 0.0


class NoKD(Distiller):
    """Cross-entropy only; no teacher is used."""

    def __init__(self, student, settings: NoneSettings) -> None:
        super().__init__(student, None)
        self.settings = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y, label_smoothing=self.settings.label_smoothing)
        return {"loss": ce, "logits": logits, "ce": ce.detach()}


METHODS.add(
    "none",
    MethodSpec(
        NoneSettings,
        lambda student, teacher, settings, ctx: NoKD(student, settings),
        needs_teacher=False,
        summary="cross-entropy only (the baseline); a given teacher is not used",
    ),
)
