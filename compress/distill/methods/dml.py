"""``dml``: Deep Mutual Learning (Zhang et al. 2018), a cohort of students and no teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, Distiller, MethodSpec


@dataclass
class DMLSettings:
    """DML's settings.

    Attributes: cohort (students trained together, ≥ 2); temperature; kl_weight; keep
    (``first``: save the first student, as before; ``best``: after every epoch, save the peer
    with the best test top-1); update (``joint``: every peer steps from one summed loss;
    ``alternating``: the paper's update, peer after peer within each batch, each against the
    others' predictions *after* their own step of that batch).
    """

    cohort: int = 2
    temperature: float = 1.0
    kl_weight: float = 1.0
    keep: Literal["first", "best"] = "first"
    update: Literal["joint", "alternating"] = "joint"

    def __post_init__(self) -> None:
        if self.cohort < 2:
            raise ValueError(f"dml needs a cohort of at least 2 students, got {self.cohort}")


class DML(Distiller):
    """Each student: CE + mean KL toward the others' (detached) predictions. The first is kept."""

    def __init__(self, student: nn.Module, peers: list[nn.Module], settings: DMLSettings) -> None:
        super().__init__(student, None)
        self.peers = nn.ModuleList(peers)
        self.s = settings
        self.substeps = len(peers) + 1 if settings.update == "alternating" else 1

    def _peer_loss(self, z: torch.Tensor, others: list[torch.Tensor], y: torch.Tensor):
        t = self.s.temperature
        log_p = F.log_softmax(z / t, dim=1)
        kl = torch.stack(
            [
                F.kl_div(log_p, F.softmax(o / t, dim=1), reduction="batchmean") * t * t
                for o in others
            ]
        ).mean()
        ce = F.cross_entropy(z, y)
        return ce, kl

    def substep(self, index: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Peer `index`'s update: its CE plus KL toward the others' current (fresh) predictions."""
        cohort = [self.model, *self.peers]
        with torch.no_grad():
            others = [m(x) for j, m in enumerate(cohort) if j != index]
        z = cohort[index](x)
        ce, kl = self._peer_loss(z, others, y)
        loss = ce + self.s.kl_weight * kl
        return {"loss": loss, "logits": z, "ce": ce.detach(), "kl": kl.detach()}

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        t = self.s.temperature
        logits = [self.model(x)] + [p(x) for p in self.peers]
        ces = [F.cross_entropy(z, y) for z in logits]
        kls = []
        for i, z in enumerate(logits):
            log_p = F.log_softmax(z / t, dim=1)
            others = [
                F.kl_div(log_p, F.softmax(o.detach() / t, dim=1), reduction="batchmean") * t * t
                for j, o in enumerate(logits)
                if j != i
            ]
            kls.append(torch.stack(others).mean())
        loss = sum(ces) + self.s.kl_weight * sum(kls)
        return {"loss": loss, "logits": logits[0], "ce": ces[0].detach(), "kl": kls[0].detach()}

    def deployable(self, eval_loader, autocast_dtype=None):
        """The first student, or with ``keep: best`` the peer with the best test top-1."""
        if self.s.keep == "first":
            return self.model, {}
        from compress.engine.metrics import evaluate

        cohort = [self.model, *self.peers]
        top1 = [evaluate(m, eval_loader, autocast_dtype=autocast_dtype)["top1"] for m in cohort]
        best = max(range(len(cohort)), key=lambda i: top1[i])
        return cohort[best], {"best_peer": best, "peer_top1": top1}


def _build(student: nn.Module, teacher: nn.Module | None, settings: DMLSettings, ctx) -> DML:
    from compress.models import create_model

    header = student.compress_header
    peers = [create_model(header.arch, **header.arch_kwargs) for _ in range(settings.cohort - 1)]
    return DML(student, peers, settings)


METHODS.add(
    "dml",
    MethodSpec(
        DMLSettings,
        _build,
        needs_teacher=False,
        online=True,
        summary="Deep Mutual Learning: a cohort of students teach each other (no teacher)",
    ),
)
