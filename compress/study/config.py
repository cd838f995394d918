"""What a study is: its grid (`StudyConfig`), its cells and where each one writes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compress.config import NO_HASH
from compress.data.base import DataSettings
from compress.data.protocols import ImbalanceSettings


@dataclass
class Resources:
    """What each cell (teacher or student run) asks of its executor.

    Attributes:
        cpus: CPU threads of each run (torch's intra-op threads, and Ray's ``num_cpus``);
            ``null``: torch's default on the machine that starts the study, fixed for every
            cell so that every executor computes the same numbers.
        gpus: GPUs of each run (Ray's ``num_gpus``; 0 on a CPU cluster).
    """

    cpus: int | None = field(default=None, metadata=NO_HASH)
    gpus: float = field(default=0, metadata=NO_HASH)

    def __post_init__(self) -> None:
        if self.cpus is not None and not 1 <= int(self.cpus) <= 1024:
            raise ValueError(f"resources.cpus must be between 1 and 1024, got {self.cpus}")
        if not 0 <= float(self.gpus) <= 64:
            raise ValueError(f"resources.gpus must be between 0 and 64, got {self.gpus}")


@dataclass
class StudyConfig:
    """Everything ``compress study`` needs (see the module docstring).

    Attributes:
        axis: what the columns vary: ``label_noise`` (σ) or ``imbalance`` (γ or ρ).
        values: the settings of the axis.
        methods: the rows (registered method names; ``none`` is the baseline).
        seeds: training seeds of every cell.
        data: the data every run uses (the axis value is applied on top).
        imbalance: the profile for ``axis: imbalance`` (its ``gamma``/``ratio`` come from `values`).
        teacher: `compress train` settings of the teacher (one per setting).
        student: `compress distill` settings shared by every cell.
        method_args: per-method settings.
        device: for every run.
        output: the study directory (on a cluster: a filesystem every worker sees).
        executor: where cells run: ``local`` (one after another, here), ``ray`` (a Ray
            cluster: ``RAY_ADDRESS``, one started on this machine, or a new local one) or
            ``ray:ADDRESS`` (``ray:auto``, ``ray:HOST:PORT``).
        resources: what each cell asks for (`Resources`).
        retries: how often a cell whose worker died (or whose claim was busy) is tried again.
    """

    axis: Literal["label_noise", "imbalance"] = "label_noise"
    values: list[float] = field(default_factory=lambda: [0.0])
    methods: list[str] = field(default_factory=lambda: ["none", "kd"])
    seeds: list[int] = field(default_factory=lambda: [0])
    data: DataSettings = field(default_factory=DataSettings)
    imbalance: ImbalanceSettings = field(default_factory=ImbalanceSettings)
    teacher: dict[str, Any] = field(default_factory=dict)
    student: dict[str, Any] = field(default_factory=dict)
    method_args: dict[str, Any] = field(default_factory=dict)
    device: str = field(default="auto", metadata=NO_HASH)
    output: str | None = field(default=None, metadata=NO_HASH)
    executor: str = field(default="local", metadata=NO_HASH)
    resources: Resources = field(default_factory=Resources)
    retries: int = field(default=2, metadata=NO_HASH)

    def __post_init__(self) -> None:
        from compress.distill.methods import METHODS

        if not self.values or not self.methods or not self.seeds:
            raise ValueError("a study needs at least one value, one method and one seed")
        split_executor(self.executor)  # a typo is one line before any run
        if not 0 <= self.retries <= 100:
            raise ValueError(f"retries must be between 0 and 100, got {self.retries}")
        for m in self.methods:
            METHODS.get(m)  # unknown names: one line with a suggestion
        for name in ("seeds", "methods"):
            items = getattr(self, name)
            if len(set(items)) != len(items):
                raise ValueError(f"{name} repeat: {items}; each cell must be run once")
        folders: dict[str, float] = {}
        for value in self.values:
            if not math.isfinite(float(value)):
                raise ValueError(f"values must be finite numbers, got {value}")
            folder = slug(self.axis, value)
            if folder in folders:
                raise ValueError(
                    f"values {folders[folder]!r} and {value!r} are the same setting ({folder}); "
                    "give each value once, differing in its first 6 significant digits"
                )
            folders[folder] = value
            try:
                self.data_for(value)  # σ in [0, 1], γ > 0, ρ ≥ 1: checked before any run
            except ValueError as exc:
                raise ValueError(f"{self.axis} value {value!r}: {exc}") from None

    def symbol(self) -> str:
        """σ, γ or ρ."""
        if self.axis == "label_noise":
            return "σ"
        return "γ" if self.imbalance.profile == "dirichlet" else "ρ"

    def data_for(self, value: float) -> DataSettings:
        """The data of one column: the axis value applied, the study's fixed noise seed."""
        seed = self.data.noise_seed if self.data.noise_seed is not None else 0
        if self.axis == "label_noise":
            return dataclasses.replace(self.data, label_noise=float(value), noise_seed=seed)
        key = "gamma" if self.imbalance.profile == "dirichlet" else "ratio"
        profile = dataclasses.replace(self.imbalance, **{key: float(value)})
        return dataclasses.replace(self.data, imbalance=profile, noise_seed=seed)


@dataclass
class Cell:
    """One run of the grid."""

    value: float
    method: str
    seed: int
    directory: Path

    @property
    def name(self) -> str:
        """A file-name form of the key: ``label_noise-0.2__kd__seed1``."""
        return "__".join(self.directory.parts[-3:])

    @property
    def key(self) -> str:
        """``0.2/kd/seed1``."""
        return f"{self.value:g}/{self.method}/seed{self.seed}"


def split_executor(text: str) -> tuple[str, str | None]:
    """The executor's kind and address: ``ray:HOST:PORT`` → ``("ray", "HOST:PORT")``.

    Anything but ``local``, ``ray`` and ``ray:ADDRESS`` is a one-line ``ValueError``.
    """
    name, _, address = str(text).partition(":")
    if (name == "local" and not address) or name == "ray":
        return name, address or None
    hint = " (Slurm is not built yet: see docs/distributed.md)" if name == "slurm" else ""
    raise ValueError(f"executor must be local, ray or ray:ADDRESS, got {text!r}{hint}")


def slug(axis: str, value: float) -> str:
    """The folder name of one setting: ``label_noise-0.2``."""
    return f"{axis}-{value:g}"


def plan_study(config: StudyConfig) -> tuple[Path, list[Cell]]:
    """The study directory and every cell, in run order (setting by setting)."""
    root = Path(config.output or "runs/study").absolute()  # workers have other cwds
    cells = [
        Cell(v, m, s, root / "cells" / slug(config.axis, v) / m / f"seed{s}")
        for v in config.values
        for m in config.methods
        for s in config.seeds
    ]
    return root, cells
