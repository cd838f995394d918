"""The benchmark table in Markdown and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = ("model", "format", "status", "size_mb", "top1", "p50_ms", "p99_ms", "throughput")
#: The CSV also carries the model's parameters and MACs (`compress.engine.metrics.model_facts`).
CSV_COLUMNS = (*COLUMNS, "params", "macs")


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "top1":
        return f"{100 * value:.2f}%"
    if key in ("size_mb", "p50_ms", "p99_ms"):
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    if key == "throughput":
        return f"{value:,.0f}"
    return str(value)


def markdown(rows: list[dict[str, Any]], *, latency_batch: int, throughput_batch: int) -> str:
    """One row per (model, format): status, size, top-1, latency at `latency_batch`, throughput."""
    header = [
        "model",
        "format",
        "status",
        "size (MB)",
        "top-1",
        f"p50 ms (batch {latency_batch})",
        f"p99 ms (batch {latency_batch})",
        f"throughput img/s (batch {throughput_batch})",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    doubts = []
    for row in rows:
        cells = [_fmt(k, row.get(k)) for k in COLUMNS]
        validation = row.get("validation") or {}
        if validation.get("verdict") == "inconclusive":
            cells[COLUMNS.index("status")] += " (validation inconclusive)"
            doubts += [f"{row['model']} {row['format']}: {d}" for d in validation.get("doubts", [])]
        lines.append("| " + " | ".join(cells) + " |")
    if doubts:
        lines += ["", *(f"- {d}" for d in doubts)]
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The same rows as CSV (raw numbers)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in CSV_COLUMNS})
    return buf.getvalue()
