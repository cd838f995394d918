"""Typed settings of the training engine."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from compress.config import NO_HASH

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


@dataclass
class OptimSettings:
    """Optimiser: SGD with momentum (the KD default) or AdamW."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])

    def __post_init__(self) -> None:
        _finite(self, "optim", ("lr", "momentum", "weight_decay"))
        if not 0 < self.lr <= 10:
            raise ValueError(f"optim.lr must be in (0, 10], got {self.lr}")
        if not 0 <= self.weight_decay < 1:
            raise ValueError(f"optim.weight_decay must be in [0, 1), got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"optim.momentum must be in [0, 1), got {self.momentum}")
        if len(self.betas) != 2 or not all(math.isfinite(b) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")


@dataclass
class ScheduleSettings:
    """Learning-rate schedule, applied per step.

    Attributes:
        name: ``multistep`` (×gamma at each milestone), ``cosine`` (to ``min_lr``), ``constant``.
        milestones: epochs at which ``multistep`` decays; values below 1 are fractions of the
            run (0.5 = half-way), so a recipe keeps its shape when ``--epochs`` changes.
        gamma: ``multistep`` decay factor.
        warmup_epochs: linear warm-up from 0 over this many epochs (may be fractional).
        min_lr: the floor of the cosine schedule.
    """

    name: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: list[float] = field(default_factory=lambda: [0.625, 0.75, 0.875])
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _finite(self, "schedule", ("gamma", "warmup_epochs", "min_lr"))
        if not 0 < self.gamma <= 1:
            raise ValueError(f"schedule.gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.warmup_epochs <= 1e6 or self.min_lr < 0:
            raise ValueError("schedule.warmup_epochs and schedule.min_lr must be ≥ 0")
        if any(not (math.isfinite(m) and 0 <= m <= 1e6) for m in self.milestones):
            raise ValueError(f"schedule.milestones must be epochs ≥ 0, got {self.milestones}")


@dataclass
class EngineSettings:
    """How the engine trains, apart from how long: optimiser, schedule, precision, device.

    `TrainSettings` adds the epochs; ``compress prune`` reuses these for its fine-tuning (its
    own epoch counts are ``finetune_epochs`` and ``step_epochs``).

    Attributes:
        seed: seeds weights, shuffling and augmentation.
        device: ``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``.
        optim: the optimiser.
        schedule: the learning-rate schedule.
        amp: autocast dtype on CUDA (``bf16``, ``fp16`` with a grad scaler, or ``none``);
            ignored on CPU. Unset (``null``) means ``bf16`` unless a method preset says
            otherwise (R2KD's ``faithful`` trains in fp32, as the released code).
        channels_last: use the channels-last memory format on CUDA.
        compile: wrap the training step in ``torch.compile``.
        grad_clip: clip the global gradient norm to this value (``null`` = off).
        threads: CPU threads for torch (``null`` = one fewer than the CPUs, at least 1, see
            `compress.engine.threads.default_threads`).
        progress: show a live progress bar on a terminal or in a notebook.
        lr_scale: under torchrun, ``linear`` multiplies the learning rate by the number of
            processes (batch sizes are per process, so the global batch grows with them);
            ``none`` keeps it.
        sync_bn: under torchrun on GPUs, synchronise BatchNorm statistics across processes.
        loggers: training logs besides ``metrics.jsonl``: ``csv`` (``results.csv``, always on),
            ``tensorboard``, ``wandb`` (offline unless ``WANDB_MODE`` says otherwise). Every run
            also writes ``curves.png``.
    """

    seed: int = 0
    device: str = field(default="auto", metadata=NO_HASH)
    optim: OptimSettings = field(default_factory=OptimSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    amp: Literal["bf16", "fp16", "none"] | None = None
    channels_last: bool = True
    compile: bool = field(default=False, metadata=NO_HASH)
    grad_clip: float | None = None
    threads: int | None = field(default=None, metadata=NO_HASH)
    progress: bool = field(default=True, metadata=NO_HASH)
    loggers: list[str] = field(default_factory=lambda: ["csv"], metadata=NO_HASH)
    lr_scale: Literal["none", "linear"] = "none"
    sync_bn: bool = False

    def __post_init__(self) -> None:
        from compress.engine.loggers import LOGGERS, missing_extra

        bad = [name for name in self.loggers if name not in LOGGERS]
        if bad:
            raise ValueError(f"unknown logger '{bad[0]}'; valid: {', '.join(LOGGERS)}")
        for name in self.loggers:
            problem = missing_extra(name)
            if problem:
                raise ValueError(problem)
        if not _DEVICE.fullmatch(str(self.device).strip().lower()):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if self.amp is None:
            self.amp = "bf16"
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed}")
        if self.grad_clip is not None and not (
            math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise ValueError(
                f"grad_clip must be a positive norm or null (off), got {self.grad_clip}"
            )
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ValueError(f"threads must be between 1 and 1024 or null, got {self.threads}")

    def engine_settings(self) -> dict[str, object]:
        """This object's `EngineSettings` fields, by name."""
        import dataclasses

        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EngineSettings)}


@dataclass
class TrainSettings(EngineSettings):
    """`EngineSettings` plus how long to train.

    Attributes:
        epochs: number of passes over the training set.
    """

    epochs: int = 240

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.epochs <= 100_000:
            raise ValueError(f"epochs must be between 1 and 100,000, got {self.epochs}")


def _finite(obj: object, prefix: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not math.isfinite(value):
            raise ValueError(f"{prefix}.{name} must be a finite number, got {value}")
