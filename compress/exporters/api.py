"""``compress export``: write a model in a deployment format and prove it matches PyTorch."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

import compress.exporters.onnx
import compress.exporters.onnx_fp16
import compress.exporters.onnx_int8
import compress.exporters.tensorrt  # noqa: F401  (registers every format)
from compress.artifacts import (
    atomic_write_json,
    default_output_dir,
    file_ref,
    load_model,
    read_header,
)
from compress.errors import CompressError
from compress.exporters.base import EXPORTERS, BatchSpec, ExportConfig, ExportContext
from compress.exporters.validate import ExportValidationError, torch_reference, validate
from compress.header import ModelHeader
from compress.outputs import run_directory
from compress.runtime.errors import AgentError

EXPORT_JSON = "export.json"


def list_formats() -> list[str]:
    """Registered export formats."""
    return EXPORTERS.names()


def dataset_images(
    header: ModelHeader, *, split: str, count: int, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """`count` class-balanced real images of the model's dataset, as the model expects them.

    Size, channels and normalisation all come from the model's header.
    """
    from compress.data import DataSettings, sample_split, settings_for_model

    if not header.dataset:
        raise CompressError(
            "the model file records no dataset, so there are no real images to calibrate or validate on"
        )
    settings = settings_for_model(header, DataSettings(name="", data_dir=data_dir))
    images, labels, info = sample_split(settings, split, count)
    if tuple(images.shape[1:]) != tuple(header.input_shape):
        raise CompressError(
            f"the model takes {'×'.join(map(str, header.input_shape))} inputs but {info.name} gives "
            f"{'×'.join(map(str, images.shape[1:]))} images; pass the dataset it was trained on"
        )
    mean = np.asarray(info.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(info.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32), labels


def check_finite(model: Any) -> None:
    """Refuse a model with NaN or infinite weights (its export could never match anything)."""
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CompressError(
                f"the model has NaN or infinite values in '{name}'; it cannot be exported: "
                "retrain it, or export an earlier checkpoint"
            )


def _update_export_json(out: Path, fmt: str, entry: dict[str, Any], source: dict[str, Any]) -> None:
    path = out / EXPORT_JSON
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    data["source"] = source
    data.setdefault("formats", {})[fmt] = entry
    atomic_write_json(path, data)


def export(config: ExportConfig, *, log: Any = print) -> dict[str, Any]:
    """Export ``config.model`` to ``config.format`` (comma-separated for several) and validate each.

    Returns:
        ``{"output", "formats": {fmt: entry}}`` where each entry has ``path``, ``size_bytes``,
        ``precision``, ``seconds`` and ``validation``. Also written to ``output/export.json``.

    Raises:
        ExportValidationError: an export differs from PyTorch beyond its tolerance (the report is
            still written to ``export.json``).
        CompressError: unknown format, bad precision or batch spec, missing model file, a format
            that cannot be built on this machine.
    """
    if not config.model:
        raise CompressError(
            "give the model file to export: compress export MODEL.safetensors --format onnx"
        )
    header = read_header(config.model)
    BatchSpec.parse(config.batch)
    formats = [f.strip() for f in config.format.split(",") if f.strip()]
    if not formats:
        raise CompressError(
            f"--format is empty; give one or more of {', '.join(EXPORTERS.names())} (comma-separated)"
        )
    exporters = []
    for fmt in formats:
        cls = EXPORTERS.get(fmt)
        settings = replace(config, format=fmt)
        exporter = cls(settings)
        exporter.check_available()  # fail before loading data or models
        exporters.append(exporter)
    model = load_model(config.model)
    check_finite(model)
    shape = header.input_shape
    stem = Path(config.model).parent.name or Path(config.model).stem
    out = Path(config.output) if config.output else default_output_dir("export", stem)
    with run_directory(out, kind="export", reuse=True):
        needs_calib = any(e.precision == "int8" for e in exporters)
        calib = (
            dataset_images(
                header, split="train", count=config.calib_images, data_dir=config.data_dir
            )[0]
            if needs_calib
            else None
        )
        val_images, val_labels = dataset_images(
            header, split="test", count=config.validate_images, data_dir=config.data_dir
        )
        ref = torch_reference(model, val_images, val_labels)
        source = {
            **file_ref(config.model),
            "input_shape": list(shape),
            "pruned": header.pruned,
        }
        results = {}
        for exporter in exporters:
            ctx = ExportContext(Path(config.model), header, calib, out, log)
            t0 = time.perf_counter()
            info = exporter.export(model, ctx)
            path = Path(info["path"])
            entry: dict[str, Any] = {
                "path": str(path),
                "size_bytes": path.stat().st_size,
                "precision": exporter.precision,
                "seconds": info["seconds"],
                "settings": {
                    k: v
                    for k, v in asdict(replace(config, format=exporter.name)).items()
                    if k not in ("model", "output")
                },
                **{k: v for k, v in info.items() if k not in ("path", "seconds")},
            }

            def check(path: Path = path, exporter: Any = exporter) -> dict[str, Any]:
                try:
                    with exporter.make_runner(path) as runner:
                        return validate(
                            runner,
                            ref,
                            precision=exporter.precision,
                            fmt=exporter.name,
                            model=model,
                            onnx_path=path,
                        )
                except AgentError as exc:  # the runtime could not load or run the export
                    raise CompressError(f"{exporter.name} export could not be run: {exc}") from None

            try:
                try:
                    entry["validation"] = check()
                except ExportValidationError as exc:
                    if not (config.auto_precision and "sensitivity" in info):
                        raise
                    entry.update(auto_precision(exporter, model, ctx, info, exc, check, log))
                    entry["validation"] = entry["auto_precision"]["validation"]
                entry["status"] = "ok"
            except ExportValidationError as exc:
                entry["validation"], entry["status"] = exc.report, "validation failed"
                _update_export_json(out, exporter.name, entry, source)
                raise
            entry["elapsed_s"] = time.perf_counter() - t0
            _update_export_json(out, exporter.name, entry, source)
            results[exporter.name] = entry
            log(describe(exporter.name, entry))
    return {"output": str(out), "formats": results}


def auto_precision(
    exporter: Any,
    model: Any,
    ctx: ExportContext,
    info: dict[str, Any],
    failure: ExportValidationError,
    check: Any,
    log: Any,
) -> dict[str, Any]:
    """Keep the most INT8-damaged nodes in float, 1, 2, 4, … of them, until validation passes.

    Each try re-quantises with more nodes in float, validates, and measures the INT8 file
    against fp32 on this CPU; the search stops, failing, once INT8 runs below
    ``auto_precision_min_speedup`` × fp32 (float nodes then cost more than INT8 saves).

    Returns:
        Entry fields: the last try's ``path``-level facts and ``auto_precision`` (float nodes,
        every try, the sensitivity ranking).

    Raises:
        ExportValidationError: no try passed before INT8 stopped paying.
    """
    from dataclasses import replace as dc_replace

    ranking = [name for name, _ in info["sensitivity"]]
    tries: list[dict[str, Any]] = [
        {"float_nodes": 0, "passed": False, "failures": failure.failures}
    ]
    count, last = 1, failure
    while ranking:
        nodes = tuple(ranking[:count])
        trial_ctx = dc_replace(ctx, float_nodes=nodes)
        result = exporter.export(model, trial_ctx)
        speed = result.get("speed_vs_fp32") or {}
        record: dict[str, Any] = {"float_nodes": count, "speedup": speed.get("speedup")}
        try:
            report = check(Path(result["path"]))
        except ExportValidationError as exc:
            record.update(passed=False, failures=exc.failures)
            tries.append(record)
            last = exc
            floor = exporter.settings.auto_precision_min_speedup
            if (speed and speed["speedup"] < floor) or count >= len(ranking):
                break  # more float nodes only make it slower: INT8 no longer pays here
            count = min(count * 2, len(ranking))
            continue
        record.update(passed=True, top1=report["top1_export"], agreement=report["top1_agreement"])
        tries.append(record)
        log(
            f"onnx-int8 --auto-precision: passes with {count} node(s) in float "
            f"({', '.join(nodes)}), ×{speed.get('speedup', float('nan')):.2f} against fp32"
        )
        extra = {k: v for k, v in result.items() if k not in ("path", "seconds")}
        return {
            **extra,
            "auto_precision": {
                "float_nodes": list(nodes),
                "tries": tries,
                "sensitivity": info["sensitivity"],
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


def describe(fmt: str, entry: dict[str, Any]) -> str:
    """The lines ``compress export`` prints for one format."""
    v = entry["validation"]
    lines = [
        f"{fmt}: {entry['path']} ({entry['size_bytes'] / 1e6:.2f} MB, {entry['precision']}) in {entry['elapsed_s']:.1f} s",
        "| check | value |",
        "|---|---|",
        f"| images | {v['images']:,} real test images |",
        f"| max abs error vs PyTorch | {v['max_abs_error']:.2e} |",
        f"| max relative error | {v['max_rel_error']:.2e} |",
        f"| top-1 agreement with PyTorch | {100 * v['top1_agreement']:.2f}% |",
        f"| top-1 PyTorch → export | {100 * v['top1_torch']:.2f}% → {100 * v['top1_export']:.2f}% ({100 * v['accuracy_delta']:+.2f} points) |",
    ]
    if "weights_export" in v:
        lines.append(
            f"| weight elements (export / PyTorch) | {v['weights_export']:,} / {v['weights_torch']:,} |"
        )
    if "speed_vs_fp32" in entry:
        sp = entry["speed_vs_fp32"]
        lines.append(
            f"| ONNX Runtime CPU latency, batch {sp['batch']}: fp32 → {fmt} | "
            f"{sp['fp32_ms']:.2f} → {sp['int8_ms']:.2f} ms (×{sp['speedup']:.2f}) |"
        )
    return "\n".join(lines)
