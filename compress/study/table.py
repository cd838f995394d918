"""The study's outputs: mean ± std per (method, setting), the tables, CSV, JSON and plot."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from compress.study.config import StudyConfig


def aggregate(config: StudyConfig, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std of the last epoch's test top-1 per (method, value).

    The last epoch, as the seed study reports final accuracy: picking the best epoch on the
    test set would select on the test set and stop before label noise is memorised. The
    training top-1 on the (noisy) training labels of the last epoch is averaged beside it.
    """
    rows = []
    for method in config.methods:
        for value in config.values:
            every = [r for r in results if r["method"] == method and r["value"] == value]
            cells = [r for r in every if r.get("status", "ok") == "ok"]
            if not every:
                continue
            scores = [r["top1_last"] for r in cells]
            train = [r["train_top1_last"] for r in cells if r.get("train_top1_last") is not None]
            rows.append(
                {
                    "method": method,
                    "value": value,
                    "mean": statistics.fmean(scores) if scores else None,
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                    "n": len(scores),
                    "failed": len(every) - len(cells),
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
        v: max((r["mean"] for r in rows if r["value"] == v and r["n"]), default=math.nan)
        for v in config.values
    }
    for method in config.methods:
        cells = []
        for v in config.values:
            r = by.get((method, v))
            if r is None:
                cells.append("–")
                continue
            if not r["n"]:
                cells.append("failed")
                continue
            text = f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"
            base = by.get(("none", v))
            if base is not None and method != "none" and base["n"] and r["mean"] < base["mean"]:
                text += " ↓"
            text = f"**{text}**" if r["mean"] == best[v] else text
            cells.append(text + (f" ({r['failed']} failed)" if r["failed"] else ""))
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
    failed = [r for r in results if r.get("status") == "failed"]
    if failed:
        note += "\n\nFailed cells (not in the means):\n\n" + "\n".join(
            f"- {config.symbol()}={r['value']:g}/{r['method']}/seed{r['seed']}: {r['error']}"
            for r in failed
        )
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
                "" if r["mean"] is None else r["mean"],
                r["std"],
                r["n"],
                " ".join(map(str, r["per_seed"])),
            ]
        )
    atomic_write_text(root / "study.csv", buf.getvalue())
    from compress.engine.settings import TrainSettings
    from compress.engine.trainer import run_environment

    environment = {k: v for k, v in run_environment(TrainSettings()).items() if k != "seed"}
    environment["threads"] = config.resources.cpus  # every cell's, whichever node ran it
    environment["executor"] = config.executor
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
    study_plot(
        [r for r in rows if r["n"]],
        config.methods,
        root / "study.png",
        xlabel=config.symbol(),
        title=config.axis,
    )
    return {"output": str(root), "rows": rows, "cells": results, "table": table + note}
