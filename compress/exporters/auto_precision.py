"""``onnx-int8 --auto-precision``: keep the nodes INT8 damages most in float until validation passes.

The candidates are units (a node and the activations after it) ranked by measured damage
(`compress.exporters.sensitivity`): 1, 2, 4, … of them are kept in float, each try re-quantised, validated by the same statistical gate as
every export (`compress.exporters.gate`) and timed against fp32. The float sets are nested and
grow to every node of the graph; a float node reads float inputs
(`compress.exporters.onnx_int8.float_inputs_unquantized`), so the last try computes fp32 and
the agreement approaches fp32's as the set grows. The search stops at the first try that
passes, at one that cannot be judged on these images (too few of them), or once INT8 runs below
``auto_precision_min_speedup`` × fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from compress.exporters.base import ExportContext
from compress.exporters.validate import ExportValidationError


def auto_precision(
    exporter: Any,
    model: Any,
    ctx: ExportContext,
    info: dict[str, Any],
    failure: ExportValidationError,
    check: Callable[[Path], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Search float-node sets after the all-INT8 export failed with `failure`.

    Returns:
        Entry fields: the chosen try's facts and ``auto_precision`` (float nodes, every try with
        its verdict, agreement and speed, the sensitivity ranking, the last validation report,
        whose verdict is ``passed`` or ``inconclusive``).

    Raises:
        ExportValidationError: every try failed, or INT8 stopped paying before one passed.
    """
    units = info.get("units") or [[name] for name, _ in info["sensitivity"]]
    tries: list[dict[str, Any]] = [
        {
            "float_nodes": 0,
            "verdict": "failed",
            "passed": False,
            "agreement": failure.report.get("top1_agreement"),
            "failures": failure.failures,
        }
    ]
    count, last = 1, failure
    while units:
        nodes = tuple(n for unit in units[:count] for n in unit)
        result = exporter.export(model, replace(ctx, float_nodes=nodes))
        speed = result.get("speed_vs_fp32") or {}
        record: dict[str, Any] = {
            "float_nodes": len(nodes),
            "units": count,
            "speedup": speed.get("speedup"),
        }
        try:
            report = check(Path(result["path"]))
        except ExportValidationError as exc:
            record.update(
                verdict="failed",
                passed=False,
                agreement=exc.report.get("top1_agreement"),
                failures=exc.failures,
            )
            tries.append(record)
            last = exc
            floor = exporter.settings.auto_precision_min_speedup
            if (speed and speed["speedup"] < floor) or count >= len(units):
                break  # more float nodes only make it slower: INT8 no longer pays here
            count = min(count * 2, len(units))
            continue
        record.update(
            verdict=report["verdict"],
            passed=report["passed"],
            top1=report["top1_export"],
            agreement=report["top1_agreement"],
        )
        tries.append(record)
        if not report["passed"] and count < len(units) and not _too_few(report):
            count = min(count * 2, len(units))  # beyond tolerance, not significantly: go on
            continue
        verb = "passes" if report["passed"] else "is inconclusive"
        pace = f", ×{speed['speedup']:.2f} against fp32" if speed else ""
        log(
            f"onnx-int8 --auto-precision: {verb} with {len(nodes)} node(s) in float "
            f"({', '.join(nodes)}){pace}"
        )
        extra = {k: v for k, v in result.items() if k not in ("path", "seconds")}
        return {
            **extra,
            "auto_precision": {
                "float_nodes": list(nodes),
                "tries": tries,
                "sensitivity": info["sensitivity"],
                "units": units,
                "validation": report,
            },
        }
    last.report["auto_precision"] = {"tries": tries, "sensitivity": info["sensitivity"]}
    raise ExportValidationError(
        exporter.name,
        [
            *last.failures,
            f"--auto-precision found no float-node set that passes ({len(tries) - 1} tries)",
        ],
        last.report,
    )


def _too_few(report: dict[str, Any]) -> bool:
    """Whether a report is inconclusive because its images cannot resolve the tolerance at all."""
    bounds = report.get("bounds") or {}
    return report.get("images", 0) < int(bounds.get("images_needed", 0))
