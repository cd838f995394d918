"""``one``: On-the-fly Native Ensemble (Lan et al. 2018), an online method with no teacher.

The student grows ``branches − 1`` extra copies of its last stage and classifier (its *head*,
registered per family) over the shared lower layers, plus a gate on the pooled shared feature:
Linear → BatchNorm1d → ReLU → softmax over branches, as the official code (``gate: linear``
is a plain linear layer, this toolkit's earlier gate). Each branch and the gated ensemble get CE; each branch
gets ``T²·KL`` toward the (detached) ensemble, weighted by a sigmoid ramp-up. The saved student
is a plain zoo model carrying the best branch's head (by test top-1 after each epoch); which
branch, every branch's top-1 and the ensemble's go into ``metrics.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from compress.distill.base import METHODS, Distiller, MethodSpec
from compress.distill.features import input_shape_of, probe_shapes
from compress.errors import CompressError
from compress.models.features import FeatureHooks


@dataclass
class ONESettings:
    """ONE's settings.

    Attributes: branches (m, 3); temperature (3); kl_weight (1); rampup (fraction of the run
    over which the KL weight ramps up by exp(−5(1−t)²); the official code: 80 epochs of 300,
    whatever the run's length); gate (``linear_bn_relu``: the official gate; ``linear``).
    """

    branches: int = 3
    temperature: float = 3.0
    kl_weight: float = 1.0
    rampup: float = 0.27
    gate: Literal["linear_bn_relu", "linear"] = "linear_bn_relu"

    def __post_init__(self) -> None:
        if self.branches < 2:
            raise ValueError(f"one needs at least 2 branches, got {self.branches}")


def run_head(modules: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Apply a head's modules in order, flattening before the classifier (the last one)."""
    for module in modules[:-1]:
        x = module(x)
    return modules[-1](torch.flatten(x, 1))


class ONE(Distiller):
    """Branches over shared layers, a gate, and the ensemble teaching every branch."""

    def __init__(self, student, head_names, branches, gate, settings: ONESettings) -> None:
        super().__init__(student, None)
        self.head_names = tuple(head_names)
        self.branches = nn.ModuleList(branches)
        self.gate = gate
        self.s = settings
        self.ramp = 1.0
        self._hooks = FeatureHooks(student, (head_names[0],), inputs=True)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        span = max(1.0, self.s.rampup * epochs)
        t = min(1.0, epoch / span)
        self.ramp = math.exp(-5.0 * (1.0 - t) ** 2)

    def all_logits(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Every branch's logits (the student's own first), the ensemble's, and the gate."""
        own = self.model(x)
        shared = self._hooks.features[self.head_names[0]]
        logits = [own] + [run_head(b, shared) for b in self.branches]
        gate = F.softmax(self.gate(F.adaptive_avg_pool2d(shared, 1).flatten(1)), dim=1)
        ensemble = sum(gate[:, i : i + 1] * z for i, z in enumerate(logits))
        return logits, ensemble, gate

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        t = self.s.temperature
        logits, ensemble, _ = self.all_logits(x)
        ce = sum(F.cross_entropy(z, y) for z in logits) + F.cross_entropy(ensemble, y)
        target = F.softmax(ensemble.detach() / t, dim=1)
        kl = sum(
            F.kl_div(F.log_softmax(z / t, dim=1), target, reduction="batchmean") * t * t
            for z in logits
        )
        loss = ce + self.s.kl_weight * self.ramp * kl
        return {"loss": loss, "logits": logits[0], "ce": ce.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def deployable(self, eval_loader, autocast_dtype=None):
        """The best branch as a plain student (its head copied in), and every branch's top-1."""
        was = self.training
        self.eval()
        n = 0
        hits = torch.zeros(len(self.branches) + 2)
        for x, y in eval_loader:
            logits, ensemble, _ = self.all_logits(x)
            for i, z in enumerate([*logits, ensemble]):
                hits[i] += float((z.argmax(1) == y).sum())
            n += len(y)
        self.train(was)
        from compress.distributed import all_reduce_sum

        *totals, n = all_reduce_sum([*hits.tolist(), float(n)])  # a sharded test split
        top1 = [h / max(1.0, n) for h in totals]
        branch_top1, ensemble_top1 = top1[:-1], top1[-1]
        best = max(range(len(branch_top1)), key=lambda i: branch_top1[i])
        plain = copy.deepcopy(self.model)
        for m in plain.modules():  # the copy must not carry this task's feature hooks
            m._forward_pre_hooks.clear()
            m._forward_hooks.clear()
        if best > 0:
            named = dict(plain.named_modules())
            for name, module in zip(self.head_names, self.branches[best - 1]):
                named[name].load_state_dict(module.state_dict())
        plain.eval()
        facts = {"best_branch": best, "branch_top1": branch_top1, "ensemble_top1": ensemble_top1}
        return plain, facts


def _build(student, teacher, settings: ONESettings, ctx) -> ONE:
    from compress.models import model_info

    arch = student.compress_header.arch
    head = model_info(arch).get("head")
    if not head:
        raise CompressError(
            f"one grows copies of the student's last stage, and '{arch}' has no head definition; "
            "use a resnet or wrn student (the seed study's students)"
        )
    named = dict(student.named_modules())
    branches = [
        nn.ModuleList(copy.deepcopy(named[n]) for n in head) for _ in range(settings.branches - 1)
    ]
    for branch in branches:  # each branch starts from its own random initialisation
        for m in branch.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    (shared_shape,) = probe_shapes(student, (head[0],), input_shape_of(ctx), inputs=True)
    gate: nn.Module = nn.Linear(shared_shape[0], settings.branches)
    if settings.gate == "linear_bn_relu":
        gate = nn.Sequential(gate, nn.BatchNorm1d(settings.branches), nn.ReLU())
    return ONE(student, head, branches, gate, settings)


METHODS.add(
    "one",
    MethodSpec(
        ONESettings,
        _build,
        needs_teacher=False,
        online=True,
        summary="ONE: branches over shared layers and a gated ensemble teach each other (no teacher)",
    ),
)
