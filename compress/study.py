"""``compress study CONFIG``: a grid of methods × data settings × seeds, as the seed study runs it.

A study file looks like::

    output: runs/study/label-noise
    axis: label_noise              # or: imbalance (then `imbalance:` gives the profile)
    values: [0.0, 0.2, 0.4, 0.6]   # σ, or γ (dirichlet) / ρ (exp, step)
    methods: [none, kd, fitnet, dml, at]
    seeds: [0, 1, 2]
    data: {name: fashion-mnist, train_subset: 5000, batch_size: 64}
    teacher: {model: resnet20, epochs: 4}                  # `compress train` settings
    student: {student: resnet8, epochs: 8}                 # `compress distill` settings
    method_args: {fitnet: {feat_weight: 100}}              # per method (optional)

Every cell (setting, method, seed) is one `compress distill` run in
``OUTPUT/cells/<setting>/<method>/seed<N>``; one teacher per setting, trained on the same
corrupted data, in ``OUTPUT/teachers/<setting>``. The corruption is fixed for the whole study
(``data.noise_seed``, default 0), so teacher and students of a setting see exactly the same
labels and only the seed of training changes between seeds. Finished cells are skipped, an
interrupted one resumes; ``study.md|csv|json`` and ``study.png`` summarise mean ± std.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compress.config import NO_HASH, config_hash
from compress.data.base import DataSettings
from compress.data.protocols import ImbalanceSettings
from compress.errors import CompressError

CELL_FILE = "cell.json"


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
        output: the study directory.
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

    def __post_init__(self) -> None:
        from compress.distill.methods import METHODS

        if not self.values or not self.methods or not self.seeds:
            raise ValueError("a study needs at least one value, one method and one seed")
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
            folder = _slug(self.axis, value)
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
    def key(self) -> str:
        """``0.2/kd/seed1``."""
        return f"{self.value:g}/{self.method}/seed{self.seed}"


def _slug(axis: str, value: float) -> str:
    return f"{axis}-{value:g}"


def plan_study(config: StudyConfig) -> tuple[Path, list[Cell]]:
    """The study directory and every cell, in run order (setting by setting)."""
    root = Path(config.output or "runs/study")
    cells = [
        Cell(v, m, s, root / "cells" / _slug(config.axis, v) / m / f"seed{s}")
        for v in config.values
        for m in config.methods
        for s in config.seeds
    ]
    return root, cells


def _cell_config(config: StudyConfig, cell: Cell, teacher: str | None) -> dict[str, Any]:
    from compress.distill.methods import METHODS

    spec = METHODS.get(cell.method)
    uses_teacher = spec.needs_teacher and not spec.online
    return {
        **config.student,
        "method": cell.method,
        "method_args": config.method_args.get(cell.method, {}),
        "teacher": teacher if uses_teacher else None,
        "data": dataclasses.asdict(config.data_for(cell.value)),
        "seed": cell.seed,
        "device": config.device,
    }


def _done(directory: Path, digest: str) -> dict[str, Any] | None:
    """The cell's summary when it finished with this very config, else None."""
    try:
        record = json.loads((directory / CELL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("hash") != digest:
        raise CompressError(
            f"'{directory}' was run with another study config (hash {record.get('hash')} vs "
            f"{digest}); use a new --output for a changed study"
        )
    return record.get("summary")


def _teacher(config: StudyConfig, root: Path, value: float, log: Callable[[str], None]) -> str:
    """The teacher of one setting: trained once on that setting's data, then reused."""
    from compress.config import build
    from compress.train import TrainConfig, train

    directory = root / "teachers" / _slug(config.axis, value)
    cfg = {
        **config.teacher,
        "data": dataclasses.asdict(config.data_for(value)),
        "seed": config.seeds[0],
        "device": config.device,
        "output": str(directory),
    }
    digest = _teacher_digest(cfg)
    if _done(directory, digest) is None:
        resume = (directory / "state.pt").exists()
        if directory.exists() and not resume:
            from compress.outputs import remove_owned

            remove_owned(directory)  # killed before its first checkpoint: compress's own files
        log(f"teacher for {config.symbol()}={value:g} → {directory}")
        summary = train(build(TrainConfig, {**cfg, "resume": resume}), log=lambda _m: None)
        _write_cell(directory, digest, summary)
    return str(directory / "model.safetensors")


def _teacher_digest(cfg: dict[str, Any]) -> str:
    """The hash of a teacher's settings, without where the study lies (a moved study resumes)."""
    return config_hash({k: v for k, v in cfg.items() if k != "output"})


def cell_digest(cfg: dict[str, Any], teacher_sha: str | None) -> str:
    """The hash of a cell: its settings and its teacher's bytes, not the teacher's path.

    ``-o s`` and ``-o $PWD/s`` (or a study moved elsewhere) are thus one study.
    """
    settings = {k: v for k, v in cfg.items() if k != "teacher"}
    return config_hash({"cell": settings, "teacher": teacher_sha})


def _write_cell(directory: Path, digest: str, summary: dict[str, Any]) -> None:
    from compress.artifacts import atomic_write_json

    atomic_write_json(directory / CELL_FILE, {"hash": digest, "summary": summary})


def run_study(
    config: StudyConfig, *, dry_run: bool = False, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or, with `dry_run`, list) every cell; write the table, CSV, JSON and plot.

    Returns:
        ``{"output", "cells": [...], "table"}``; with `dry_run`, the cells and whether each is done.
    """
    from compress.outputs import make_owned_dir

    root, cells = plan_study(config)
    if dry_run:
        return {"output": str(root), "cells": [_dry(config, root, cell) for cell in cells]}
    from compress.outputs import DirectoryLock

    make_owned_dir(root, kind="study")
    with DirectoryLock(root):  # one study process per output: a second one stops at once
        return _run_cells(config, root, cells, log)


def _dry(config: StudyConfig, root: Path, cell: Cell) -> dict[str, Any]:
    """What a dry run says of one cell: done (with this very config) or to do, and where."""
    teacher = root / "teachers" / _slug(config.axis, cell.value) / "model.safetensors"
    done = False
    if (cell.directory / CELL_FILE).exists():
        sha = _teacher_hash(str(teacher)) if teacher.exists() else None
        digest = cell_digest(_cell_config(config, cell, str(teacher)), sha)
        try:
            done = _done(cell.directory, digest) is not None
        except CompressError:
            done = False  # run with another config: it would be refused, so it is not done
    return {"cell": cell.key, "done": done, "dir": str(cell.directory)}


def _run_cells(
    config: StudyConfig, root: Path, cells: list[Cell], log: Callable[[str], None]
) -> dict[str, Any]:
    from compress.config import build
    from compress.distill.api import distill
    from compress.distill.config import DistillConfig
    from compress.outputs import remove_owned

    results: list[dict[str, Any]] = []
    teachers: dict[float, str] = {}
    started, ran = time.perf_counter(), 0
    for i, cell in enumerate(cells):
        if cell.value not in teachers:
            teachers[cell.value] = _teacher(config, root, cell.value, log)
        cfg = _cell_config(config, cell, teachers[cell.value])
        digest = cell_digest(cfg, _teacher_hash(teachers[cell.value]))
        summary = _done(cell.directory, digest)
        status = "skipped (done)"
        if summary is None:
            resume = any(cell.directory.rglob("state.pt")) if cell.directory.exists() else False
            if cell.directory.exists() and not resume:
                remove_owned(cell.directory)
            summary = distill(
                build(DistillConfig, {**cfg, "output": str(cell.directory), "resume": resume}),
                log=lambda _m: None,
            )
            _write_cell(cell.directory, digest, summary)
            ran += 1
            status = f"last-epoch top-1 {100 * summary['top1_last']:.2f}%"
        results.append(
            {"value": cell.value, "method": cell.method, "seed": cell.seed, **_facts(summary)}
        )
        left = len(cells) - i - 1
        eta = (time.perf_counter() - started) / max(1, ran) * left if ran else 0.0
        log(
            f"[{i + 1}/{len(cells)}] {config.symbol()}={cell.key}: {status}; ETA {eta / 60:.1f} min"
        )
    return write_study(config, root, results)


def _teacher_hash(path: str) -> str:
    from compress.artifacts import file_sha256

    return file_sha256(path)


def _facts(summary: dict[str, Any]) -> dict[str, Any]:
    protocol = summary.get("data_protocol") or {}
    return {
        "top1_last": summary["top1_last"],
        "top1_best_epoch_on_test": summary["top1"],
        "train_top1_last": summary.get("train_top1_last"),
        "per_class_top1": summary.get("per_class_top1"),
        "realised_noise": (protocol.get("label_noise") or {}).get("realised_rate"),
        "class_counts": (protocol.get("imbalance") or {}).get("counts"),
    }


def aggregate(config: StudyConfig, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std of the last epoch's test top-1 per (method, value).

    The last epoch, as the seed study reports final accuracy: picking the best epoch on the
    test set would select on the test set and stop before label noise is memorised. The
    training top-1 on the (noisy) training labels of the last epoch is averaged beside it.
    """
    rows = []
    for method in config.methods:
        for value in config.values:
            cells = [r for r in results if r["method"] == method and r["value"] == value]
            if not cells:
                continue
            scores = [r["top1_last"] for r in cells]
            train = [r["train_top1_last"] for r in cells if r.get("train_top1_last") is not None]
            rows.append(
                {
                    "method": method,
                    "value": value,
                    "mean": statistics.fmean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                    "n": len(scores),
                    "per_seed": scores,
                    "train_mean": statistics.fmean(train) if train else None,
                }
            )
    return rows


def markdown_table(config: StudyConfig, rows: list[dict[str, Any]]) -> str:
    """The seed study's table: methods as rows, settings as columns, mean ± std in %.

    The best of a column is in bold; a cell below the ``none`` baseline is marked ↓.
    """
    by = {(r["method"], r["value"]): r for r in rows}
    sym = config.symbol()
    header = ["method", *[f"{sym} = {v:g}" for v in config.values]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {
        v: max((r["mean"] for r in rows if r["value"] == v), default=math.nan)
        for v in config.values
    }
    for method in config.methods:
        cells = []
        for v in config.values:
            r = by.get((method, v))
            if r is None:
                cells.append("–")
                continue
            text = f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"
            base = by.get(("none", v))
            if base is not None and method != "none" and r["mean"] < base["mean"]:
                text += " ↓"
            cells.append(f"**{text}**" if r["mean"] == best[v] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def train_table(config: StudyConfig, rows: list[dict[str, Any]]) -> str:
    """Methods × settings of the mean last-epoch training top-1 (memorised noise shows here)."""
    if not any(r.get("train_mean") is not None for r in rows):
        return ""
    by = {(r["method"], r["value"]): r for r in rows}
    sym = config.symbol()
    lines = ["| method | " + " | ".join(f"{sym} = {v:g}" for v in config.values) + " |"]
    lines.append("|" + "---|" * (len(config.values) + 1))
    for method in config.methods:
        cells = []
        for v in config.values:
            r = by.get((method, v))
            mean = r.get("train_mean") if r else None
            cells.append("–" if mean is None else f"{100 * mean:.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_study(config: StudyConfig, root: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    """``study.md``, ``study.csv``, ``study.json`` and ``study.png`` in `root`."""
    import csv
    import io

    from compress.artifacts import atomic_write_json, atomic_write_text
    from compress.report.plots import study_plot

    rows = aggregate(config, results)
    table = markdown_table(config, rows)
    seeds = len(config.seeds)
    note = (
        f"\n\nLast-epoch test top-1 (%), mean ± sample std over {seeds} seed(s); bold: the best "
        "of a column; ↓: below the no-KD baseline. No epoch is selected on the test set."
    )
    if config.axis == "imbalance" and config.imbalance.profile == "dirichlet":
        note += " Imbalance: our protocol (Dirichlet γ), the seed study does not state its own."
    train = train_table(config, rows)
    if train:
        note += (
            "\n\nTraining top-1 (%) on the training labels as given (noisy ones included), "
            "last epoch:\n\n" + train
        )
    atomic_write_text(root / "study.md", table + note + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", config.axis, "mean", "std", "n", "per_seed"])
    for r in rows:
        writer.writerow(
            [
                r["method"],
                r["value"],
                r["mean"],
                r["std"],
                r["n"],
                " ".join(map(str, r["per_seed"])),
            ]
        )
    atomic_write_text(root / "study.csv", buf.getvalue())
    from compress.engine.settings import TrainSettings
    from compress.engine.trainer import run_environment

    environment = {k: v for k, v in run_environment(TrainSettings()).items() if k != "seed"}
    atomic_write_json(
        root / "study.json",
        {
            "axis": config.axis,
            "metric": "top1_last",
            "rows": rows,
            "cells": results,
            "environment": environment,
        },
    )
    study_plot(rows, config.methods, root / "study.png", xlabel=config.symbol(), title=config.axis)
    return {"output": str(root), "rows": rows, "cells": results, "table": table + note}
