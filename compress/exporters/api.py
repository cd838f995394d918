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
            try:
                with exporter.make_runner(path) as runner:
                    entry["validation"] = validate(
                        runner,
                        ref,
                        precision=exporter.precision,
                        fmt=exporter.name,
                        model=model,
                        onnx_path=path,
                    )
                entry["status"] = "ok"
            except AgentError as exc:  # the runtime could not load or run the export
                raise CompressError(f"{exporter.name} export could not be run: {exc}") from None
            except ExportValidationError as exc:
                entry["validation"], entry["status"] = exc.report, "validation failed"
                _update_export_json(out, exporter.name, entry, source)
                raise
            entry["elapsed_s"] = time.perf_counter() - t0
            _update_export_json(out, exporter.name, entry, source)
            results[exporter.name] = entry
            log(describe(exporter.name, entry))
    return {"output": str(out), "formats": results}


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
