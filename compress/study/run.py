"""``compress study``'s driver: plan the grid, hand it to the executor, write the outputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from compress.errors import CompressError
from compress.study.config import Cell, StudyConfig, plan_study


def pinned(config: StudyConfig) -> StudyConfig:
    """`config` with ``resources.cpus`` fixed (torch's default here when unset).

    Every run of the study then uses that many threads, whichever executor and node runs it:
    float results depend on the thread count, and one table must not depend on where it ran.
    """
    if config.resources.cpus is not None:
        return config
    import torch

    resources = dataclasses.replace(config.resources, cpus=torch.get_num_threads())
    return dataclasses.replace(config, resources=resources)


def run_study(
    config: StudyConfig, *, dry_run: bool = False, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run (or, with `dry_run`, list) every cell; write the table, CSV, JSON and plot.

    Returns:
        ``{"output", "rows", "cells": [...], "table", "failed"}``; with `dry_run`, the cells,
        whether each is done and where it would run.
    """
    from compress.outputs import DirectoryLock, make_owned_dir
    from compress.study.cells import cell_spec, teacher_spec
    from compress.study.executors import Progress, parse_executor
    from compress.study.table import write_study

    config = pinned(config)
    executor = parse_executor(config.executor)
    root, cells = plan_study(config)
    if dry_run:
        where = executor.where(config.resources)
        return {
            "output": str(root),
            "executor": config.executor,
            "where": where,
            "cells": [{**_dry(config, root, cell), "where": where} for cell in cells],
        }
    make_owned_dir(root, kind="study")
    with DirectoryLock(root):  # one study process per output: a second one stops at once
        teachers = {v: teacher_spec(config, root, v) for v in config.values}
        _check_not_another_study(config, teachers)
        specs = [cell_spec(config, root, cell) for cell in cells]
        progress = Progress(len(specs), root, config.symbol(), log)
        results = executor.run(teachers, specs, progress, config, log)
        out = write_study(config, root, results)
    out["failed"] = [r for r in results if r["status"] == "failed"]
    return out


def _check_not_another_study(config: StudyConfig, teachers: dict[float, dict[str, Any]]) -> None:
    """A teacher finished under another config: the whole study is refused, in one line."""
    from pathlib import Path

    from compress.study.cells import done_record

    for spec in teachers.values():
        done_record(Path(spec["directory"]), spec["digest"])  # raises on another config


def _dry(config: StudyConfig, root: Any, cell: Cell) -> dict[str, Any]:
    """What a dry run says of one cell: done (with this very config) or to do, and where."""
    from compress.study.cells import (
        CELL_FILE,
        TEACHER_FILE,
        cell_digest,
        cell_spec,
        done_record,
        teacher_sha,
    )
    from compress.study.config import slug

    teacher = root / "teachers" / slug(config.axis, cell.value) / TEACHER_FILE
    done = False
    if (cell.directory / CELL_FILE).exists():
        spec = cell_spec(config, root, cell)
        sha = teacher_sha(str(teacher)) if teacher.exists() and spec["uses_teacher"] else None
        cfg = {**spec["cfg"], "teacher": str(teacher) if spec["uses_teacher"] else None}
        try:
            done = done_record(cell.directory, cell_digest(cfg, sha)) is not None
        except CompressError:
            done = False  # run with another config: it would be refused, so it is not done
    return {"cell": cell.key, "done": done, "dir": str(cell.directory)}
