"""``rkd-d``, ``rkd-a``, ``rkd-da``: relational KD (Park et al. 2019), as mdistiller ships it.

On the penultimate embedding (the classifier's input): pairwise distances, each divided by
the batch mean (RKD-D), and the cosines of every triplet angle (RKD-A), matched with the Huber
loss. The three names differ only in the weights: distance 25 / angle 50 (RepDistiller and
mdistiller), the other term off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, MethodSpec
from compress.distill.feature_losses import rkd_angle_loss, rkd_distance_loss
from compress.distill.features import FeatureDistiller, embedding_of


@dataclass
class RKDSettings:
    """Attributes: ce_weight; distance_weight; angle_weight (0 turns a term off)."""

    ce_weight: float = 1.0
    distance_weight: float = 25.0
    angle_weight: float = 50.0


class RKD(FeatureDistiller):
    """Match the geometry of the batch's embeddings."""

    def __init__(self, student, teacher, settings: RKDSettings) -> None:
        super().__init__(
            student,
            teacher,
            (embedding_of(student, "student"),),
            (embedding_of(teacher, "teacher"),),
            inputs=True,
        )
        self.s = settings

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        (e_s,) = self.student_features()
        _, (e_t,) = self.teacher_forward(x)
        e_s, e_t = e_s.flatten(1), e_t.flatten(1)
        ce = F.cross_entropy(logits, y)
        out = {"logits": logits, "ce": ce.detach()}
        loss = self.s.ce_weight * ce
        if self.s.distance_weight:
            d = rkd_distance_loss(e_s, e_t)
            loss = loss + self.s.distance_weight * d
            out["distance"] = d.detach()
        if self.s.angle_weight:
            a = rkd_angle_loss(e_s, e_t)
            loss = loss + self.s.angle_weight * a
            out["angle"] = a.detach()
        return {"loss": loss, **out}


def _spec(distance: float, angle: float, summary: str) -> MethodSpec:
    @dataclass
    class Settings(RKDSettings):
        __doc__ = RKDSettings.__doc__
        distance_weight: float = distance
        angle_weight: float = angle

    return MethodSpec(Settings, lambda st, te, s, ctx: RKD(st, te, s), summary=summary)


METHODS.add(
    "rkd-d", _spec(25.0, 0.0, "Relational KD, distance term (Huber on normalised distances)")
)
METHODS.add("rkd-a", _spec(0.0, 50.0, "Relational KD, angle term (Huber on triplet angles)"))
METHODS.add("rkd-da", _spec(25.0, 50.0, "Relational KD, distance and angle"))
