"""The Distiller base class and the method registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.engine.tasks import Task
from compress.registry import Registry


@dataclass
class DistillContext:
    """What a method may need besides the networks: data facts, device, logging, a sample batch."""

    info: Any  # compress.data.DatasetInfo
    device: torch.device
    seed: int = 0
    eval_loader: Any = None
    train_loader: Any = None
    holdout: Callable[[int], Any] | None = None  # holdout(n): n held-out training images
    sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
    log: Callable[[str], None] = print
    report: dict[str, Any] = field(default_factory=dict)  # facts for summary.json


class Distiller(Task):
    """A student trained against a frozen teacher; subclasses implement ``forward(x, y)``.

    ``forward`` returns ``{"loss", "logits", <named parts>}`` like every `Task`. The teacher is
    frozen: eval mode, no gradients, left out of checkpoints.
    """

    frozen: tuple[str, ...] = ("teacher",)

    def __init__(self, student: nn.Module, teacher: nn.Module | None) -> None:
        super().__init__()
        self.model = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits."""
        return self.teacher(x)


@dataclass
class MethodSpec:
    """A registered distillation method.

    Attributes:
        settings_cls: the dataclass of the method's settings (``method_args`` in a config).
        build: ``build(student, teacher, settings, ctx) -> Distiller``.
        needs_teacher: the method requires ``--teacher``.
        online: the method trains without a pretrained teacher by design (a cohort or branches).
        presets: named bundles of settings (e.g. R2KD's ``faithful``).
        init_phase: ``init_phase(task, settings) -> (init_task, epochs) | None``: a phase of its
            own epochs that trains before the run (FSP's RepDistiller initialisation), resumable
            on its own and skipped once finished.
        engine_presets: what a preset sets outside the method, in the training settings
            (``faithful`` trains in fp32: ``{"amp": "none"}``); explicit settings win.
        summary: one line for ``compress methods``.
    """

    settings_cls: type
    build: Callable[..., Distiller]
    needs_teacher: bool = True
    online: bool = False
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_phase: Callable[..., Any] | None = None
    engine_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: str = ""


#: name → MethodSpec
METHODS: Registry = Registry("distillation method")
