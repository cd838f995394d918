"""Typed settings of the training engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from compress.config import NO_HASH


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
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be ≥ 0, got {self.weight_decay}")


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


@dataclass
class TrainSettings:
    """How the engine trains: epochs, optimiser, schedule, precision, device.

    Attributes:
        epochs: number of passes over the training set.
        seed: seeds weights, shuffling and augmentation.
        device: ``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``.
        optim: the optimiser.
        schedule: the learning-rate schedule.
        amp: autocast dtype on CUDA (``bf16``, ``fp16`` with a grad scaler, or ``none``);
            ignored on CPU.
        channels_last: use the channels-last memory format on CUDA.
        compile: wrap the training step in ``torch.compile``.
        grad_clip: clip the global gradient norm to this value (``null`` = off).
        threads: CPU threads for torch (``null`` = torch's default).
        progress: show a live progress bar on a terminal.
    """

    epochs: int = 240
    seed: int = 0
    device: str = field(default="auto", metadata=NO_HASH)
    optim: OptimSettings = field(default_factory=OptimSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    amp: Literal["bf16", "fp16", "none"] = "bf16"
    channels_last: bool = True
    compile: bool = field(default=False, metadata=NO_HASH)
    grad_clip: float | None = None
    threads: int | None = field(default=None, metadata=NO_HASH)
    progress: bool = field(default=True, metadata=NO_HASH)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be ≥ 1, got {self.epochs}")
