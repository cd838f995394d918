"""One cell of a study, run wherever an executor puts it: a teacher or a student run.

`run_teacher` and `run_cell` take plain dicts (`teacher_spec`, `cell_spec` build them) and
return plain dicts, so a local loop and a Ray worker call the very same function. Each one:

* skips a run that already finished with this very config (its ``cell.json`` holds the hash);
* **claims** the run with an ``flock`` on ``ROOT/.claims/<run>.lock`` before touching its
  directory, so two workers never train one run (a claim held elsewhere is `ClaimBusy`, which an
  executor may retry); the kernel (or the NFSv4/Lustre lock manager) drops the claim of a
  worker that dies, so its retry claims it again and resumes from the run's ``state.pt``;
* counts its attempts (``ROOT/.claims/<run>.attempts``) and records them, the node that ran it
  and how long it took;
* returns ``{"status": "failed", "error": one line}`` for a failure of the input — a
  `CompressError` (bad data, a diverged run) or a ``ValueError`` — which no retry would cure;
  anything else (a killed worker, a full disk) is left to the executor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from compress.config import config_hash
from compress.errors import CompressError
from compress.outputs import LockBusyError

CELL_FILE = "cell.json"
CLAIMS = ".claims"


class ClaimBusy(LockBusyError):
    """Another worker holds the run's claim (retried by the executor)."""


#: The file of a study's teacher that its students distil from (the last epoch's).
TEACHER_FILE = "last.safetensors"


def teacher_spec(config: Any, root: Path, value: float) -> dict[str, Any]:
    """Everything a worker needs to train (or find) the teacher of one setting."""
    from compress.study.config import slug

    directory = root / "teachers" / slug(config.axis, value)
    cfg = {
        **config.teacher,
        "data": dataclasses.asdict(config.data_for(value)),
        "seed": config.seeds[0],
        "device": config.device,
        "threads": config.resources.cpus,
    }
    return {
        "kind": "teacher",
        "root": str(root),
        "directory": str(directory),
        "name": "teachers__" + slug(config.axis, value),
        "label": f"teacher for {config.symbol()}={value:g}",
        "cfg": cfg,
        "digest": config_hash({k: v for k, v in cfg.items() if k != "threads"}),
    }


def cell_spec(config: Any, root: Path, cell: Any) -> dict[str, Any]:
    """Everything a worker needs to run one student cell (its teacher comes separately)."""
    from compress.distill.methods import METHODS

    spec = METHODS.get(cell.method)
    cfg = {
        **config.student,
        "method": cell.method,
        "method_args": config.method_args.get(cell.method, {}),
        "teacher": None,
        "data": dataclasses.asdict(config.data_for(cell.value)),
        "seed": cell.seed,
        "device": config.device,
    }
    return {
        "kind": "cell",
        "root": str(root),
        "directory": str(cell.directory),
        "name": cell.name,
        "label": cell.key,
        "cfg": cfg,
        "threads": config.resources.cpus,
        "uses_teacher": spec.needs_teacher and not spec.online,
        "value": cell.value,
        "method": cell.method,
        "seed": cell.seed,
    }


def cell_digest(cfg: dict[str, Any], teacher_sha: str | None) -> str:
    """The hash of a cell: its settings and its teacher's bytes, not the teacher's path.

    ``-o s`` and ``-o $PWD/s`` (or a study moved elsewhere) are thus one study. A cell that
    uses no teacher (no KD, the online methods) passes ``None``: its teacher does not change it.
    """
    settings = {k: v for k, v in cfg.items() if k != "teacher"}
    return config_hash({"cell": settings, "teacher": teacher_sha})


def done_record(directory: Path, digest: str) -> dict[str, Any] | None:
    """The run's ``cell.json`` when it finished with this very config, else None."""
    try:
        record = json.loads((directory / CELL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("hash") != digest:
        raise CompressError(
            f"'{directory}' was run with another study config (hash {record.get('hash')} vs "
            f"{digest}); use a new --output for a changed study"
        )
    return record if "summary" in record else None


def teacher_sha(path: str) -> str:
    """The teacher file's sha256 (what a cell's hash depends on)."""
    from compress.artifacts import file_sha256

    return file_sha256(path)


def run_teacher(spec: dict[str, Any]) -> dict[str, Any]:
    """Train (or find) one setting's teacher; ``{"status", "path", "sha", ...}``."""
    directory = Path(spec["directory"])
    # the last epoch's teacher: model.safetensors is the best epoch *on the test set*, and a
    # student distilled from it would carry that selection into the study's table
    model = str(directory / TEACHER_FILE)
    try:
        record = done_record(directory, spec["digest"])
        if record is None:
            record = _claimed(spec, lambda: _train_teacher(spec, directory))
        return {"status": "ok", "path": model, "sha": teacher_sha(model), **_where(record)}
    except (CompressError, ValueError) as exc:
        if isinstance(exc, LockBusyError):
            raise
        return {"status": "failed", "error": str(exc).splitlines()[0]}


def run_cell(spec: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    """Run (or find) one student cell; the row `compress.study.table` aggregates."""
    facts = {"value": spec["value"], "method": spec["method"], "seed": spec["seed"]}
    if teacher.get("status") != "ok":
        return {**facts, "status": "failed", "error": f"teacher failed: {teacher.get('error')}"}
    cfg = {**spec["cfg"], "teacher": teacher["path"] if spec["uses_teacher"] else None}
    digest = cell_digest(cfg, teacher["sha"] if spec["uses_teacher"] else None)
    directory = Path(spec["directory"])
    try:
        record = done_record(directory, digest)
        skipped = record is not None
        if record is None:
            run = {**spec, "digest": digest}
            record = _claimed(run, lambda: _train_cell(run, cfg, directory))
    except (CompressError, ValueError) as exc:
        if isinstance(exc, LockBusyError):
            raise
        return {**facts, "status": "failed", "error": str(exc).splitlines()[0]}
    return {**facts, "status": "ok", "skipped": skipped, **_where(record),
            **summary_facts(record["summary"])}  # fmt: skip


def _where(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("node", "seconds", "attempts")}


def summary_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """What the study keeps of a cell's summary."""
    protocol = summary.get("data_protocol") or {}
    return {
        "top1_last": summary["top1_last"],
        "top1_best_epoch_on_test": summary["top1"],
        "train_top1_last": summary.get("train_top1_last"),
        "per_class_top1": summary.get("per_class_top1"),
        "realised_noise": (protocol.get("label_noise") or {}).get("realised_rate"),
        "class_counts": (protocol.get("imbalance") or {}).get("counts"),
    }


def _claimed(spec: dict[str, Any], train: Any) -> dict[str, Any]:
    """Run `train` holding the run's claim; write and return its ``cell.json`` record."""
    from compress.artifacts import atomic_write_json, atomic_write_text
    from compress.outputs import DirectoryLock

    claims = Path(spec["root"]) / CLAIMS
    claims.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(claims, f"{spec['name']}.lock", what=f"{spec['label']}")
    try:
        lock.acquire()
    except LockBusyError as exc:
        raise ClaimBusy(str(exc)) from None
    try:
        counter = claims / f"{spec['name']}.attempts"
        try:
            attempts = int(counter.read_text()) + 1
        except (OSError, ValueError):
            attempts = 1
        atomic_write_text(counter, f"{attempts}\n")
        started = time.perf_counter()
        summary = train()
        record = {
            "hash": spec["digest"],
            "summary": summary,
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "seconds": round(time.perf_counter() - started, 3),
            "attempts": attempts,
        }
        atomic_write_json(Path(spec["directory"]) / CELL_FILE, record)
        return record
    finally:
        lock.release()


def _fresh(directory: Path) -> bool:
    """Whether the run starts over (else it resumes its ``state.pt``); clears a torn start."""
    from compress.outputs import remove_owned

    resume = any(directory.rglob("state.pt")) if directory.exists() else False
    if directory.exists() and not resume:
        remove_owned(directory)  # killed before its first checkpoint: compress's own files
    return not resume


def _train_teacher(spec: dict[str, Any], directory: Path) -> dict[str, Any]:
    from compress.config import build
    from compress.train import TrainConfig, train

    resume = not _fresh(directory)
    cfg = {**spec["cfg"], "output": str(directory), "resume": resume}
    return train(build(TrainConfig, cfg), log=lambda _m: None)


def _train_cell(spec: dict[str, Any], cfg: dict[str, Any], directory: Path) -> dict[str, Any]:
    from compress.config import build
    from compress.distill.api import distill
    from compress.distill.config import DistillConfig

    resume = not _fresh(directory)
    run = {**cfg, "threads": spec["threads"], "output": str(directory), "resume": resume}
    return distill(build(DistillConfig, run), log=lambda _m: None)
