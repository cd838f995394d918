"""``compress export``: write a model in a deployment format and prove it matches PyTorch."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from compress.artifacts import (
    atomic_write_json,
    default_output_dir,
    file_ref,
    load_model,
    read_header,
)
from compress.errors import CompressError
from compress.exporters.auto_precision import auto_precision
from compress.exporters.base import (
    EXPORTERS,
    BatchSpec,
    ExportConfig,
    ExportContext,
    ExportSettings,
    check_applicable,
    load_formats,
)
from compress.exporters.validate import ExportValidationError, torch_reference, validate
from compress.header import ModelHeader
from compress.outputs import run_directory
from compress.runtime.errors import AgentError

EXPORT_JSON = "export.json"

load_formats()  # every format module of this package registers itself


def list_formats() -> list[str]:
    """Registered export formats."""
    return EXPORTERS.names()


def dataset_images(
    header: ModelHeader, *, split: str, count: int, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """`count` class-balanced real images of the model's dataset, as the model expects them.

    Size, channels and normalisation all come from the model's header.
    """
    from compress.data import DataSettings, check_fits, sample_split, settings_for_model

    if not header.dataset:
        raise CompressError(
            "the model file records no dataset, so there are no real images to calibrate or validate on"
        )
    settings = settings_for_model(header, DataSettings(name="", data_dir=data_dir))
    images, labels, info = sample_split(settings, split, count)
    check_fits(header, info, what="model")
    if tuple(images.shape[1:]) != tuple(header.input_shape):
        raise CompressError(
            f"the model takes {'×'.join(map(str, header.input_shape))} inputs but {info.name} gives "
            f"{'×'.join(map(str, images.shape[1:]))} images; pass the dataset it was trained on"
        )
    from compress.runtime.normalise import normalise

    return normalise(images, info.mean, info.std), labels


def check_finite(model: Any) -> None:
    """Refuse a model with NaN or infinite weights (its export could never match anything)."""
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CompressError(
                f"the model has NaN or infinite values in '{name}'; it cannot be exported: "
                "retrain it, or export an earlier checkpoint"
            )


def _update_export_json(
    out: Path, fmt: str, entry: dict[str, Any], source: dict[str, Any], *, rejected: bool = False
) -> None:
    """Record one format in ``export.json``.

    A validated one goes under ``formats`` (the model it came from under ``source``), a failed
    one under ``rejected``, where the good entry stays as it was.
    """
    path = out / EXPORT_JSON
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if rejected:
        data.setdefault("rejected", {})[fmt] = entry
    else:
        data["source"] = source
        data.setdefault("formats", {})[fmt] = entry
        data.get("rejected", {}).pop(fmt, None)
    atomic_write_json(path, data)


def make_exporters(config: ExportSettings) -> list[Any]:
    """The exporters ``config.format`` asks for (comma-separated), each with its own settings.

    Raises:
        CompressError: an empty or unknown format, a precision the format does not have, a
            format this machine cannot produce, or a key none of the formats takes.
    """
    from compress.exporters.formats import export_names, resolve_export

    formats = [f.strip() for f in config.format.split(",") if f.strip()]
    if not formats:
        raise CompressError(
            f"--format is empty; give one or more of {', '.join(export_names())} (comma-separated)"
        )
    exporters = []
    for fmt in formats:
        name, precision = resolve_export(fmt, config.precision)
        exporter = EXPORTERS.get(name)(replace(config, format=name, precision=precision))
        exporters.append(exporter)
    check_applicable(config, exporters)
    for exporter in exporters:
        exporter.check_available()  # fail before loading data or models
    return exporters


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
    formats = {f.strip() for f in config.format.split(",")}
    if header.quantized and config.qdq_placement is None and "onnx-int8" in formats:
        # the flavour the model was quantized for: uint8 activations are ONNX Runtime's
        uint8 = header.quantization.get("activation_type") == "uint8"
        config = replace(config, qdq_placement="ort" if uint8 else "trt")
    exporters = make_exporters(config)
    if header.quantized:
        refused = [e.name for e in exporters if e.precision != "int8"]
        if refused:
            raise CompressError(
                f"'{config.model}' carries its quantization (learned INT8 scales), which "
                f"{', '.join(refused)} cannot hold; export it with --format onnx-int8 or "
                "trt-int8, or export its float parent"
            )
    if config.reduce_range and header.quantized:
        learned = (
            "7-bit weights already"
            if header.quantization.get("reduce_range")
            else "8-bit weights; for 7-bit ones quantize its float parent with compress quantize "
            "--reduce-range"
        )
        raise CompressError(
            f"--reduce-range sets post-training INT8's weight range; '{config.model}' learned "
            f"its own: drop --reduce-range ({learned})"
        )
    if config.qdq_placement is not None and not header.quantized:
        raise CompressError(
            f"--qdq-placement applies to a model made by compress quantize; '{config.model}' is "
            "float (post-training INT8 places Q/DQ itself): drop --qdq-placement"
        )
    model = load_model(config.model)
    check_finite(model)
    shape = header.input_shape
    stem = Path(config.model).parent.name or Path(config.model).stem
    out = Path(config.output) if config.output else default_output_dir("export", stem)
    with run_directory(out, kind="export", reuse=True):
        int8 = [  # the exports that calibrate: PTQ, and the ort placement of a quantized model
            e
            for e in exporters
            if e.precision == "int8"
            and not (
                header.quantized and (e.name != "onnx-int8" or e.settings.qdq_placement == "trt")
            )
        ]
        calib = (
            dataset_images(
                header,
                split="train",
                count=max(e.settings.calib_images for e in int8),
                data_dir=config.data_dir,
            )[0]
            if int8
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
            results[exporter.name] = _export_one(
                exporter, model, config, header, calib, ref, out, source, log
            )
    return {"output": str(out), "formats": results}


def _staging(out: Path, name: str) -> Path:
    """A fresh folder inside the output where one format is written before it is validated."""
    stage = out / f".staging-{name}"
    if stage.exists():
        shutil.rmtree(stage)  # an interrupted export's own leftovers (inside compress's folder)
    stage.mkdir()
    return stage


def _publish(stage: Path, out: Path) -> dict[str, str]:
    """Move every file of a validated export into `out` (each an atomic rename); old → new paths."""
    moved = {}
    for item in sorted(stage.iterdir()):
        target = out / item.name
        os.replace(item, target)
        moved[str(item)] = str(target)
    stage.rmdir()
    return moved


def _reject(stage: Path, out: Path, name: str) -> Path:
    """Keep a failed export's files in ``<format>.rejected/`` (never over the good files)."""
    rejected = out / f"{name}.rejected"
    if rejected.exists():
        shutil.rmtree(rejected)
    stage.rename(rejected)
    return rejected


def _export_one(
    exporter: Any,
    model: Any,
    config: ExportConfig,
    header: ModelHeader,
    calib: Any,
    ref: Any,
    out: Path,
    source: dict[str, Any],
    log: Any,
) -> dict[str, Any]:
    """Export one format into a staging folder, validate it there, then publish or reject it.

    A failed export never replaces the files of an earlier good one: its files go to
    ``<format>.rejected/`` and ``export.json`` records it under ``rejected``.
    """
    stage = _staging(out, exporter.name)
    ctx = ExportContext(Path(config.model), header, calib, stage, log)
    t0 = time.perf_counter()
    try:
        info = exporter.export(model, ctx)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    path = Path(info["path"])
    entry: dict[str, Any] = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "precision": exporter.precision,
        "seconds": info["seconds"],
        "source": source,
        "settings": asdict(exporter.settings),
        **{k: v for k, v in info.items() if k not in ("path", "seconds")},
    }

    def check(path: Path = path) -> dict[str, Any]:
        try:
            with exporter.make_runner(path) as runner:
                return validate(
                    runner,
                    ref,
                    precision="int8-learned" if header.quantized else exporter.precision,
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
    except ExportValidationError as exc:
        rejected = _reject(stage, out, exporter.name)
        entry["path"] = str(rejected / path.name)
        entry["validation"], entry["status"] = exc.report, "validation failed"
        _update_export_json(out, exporter.name, entry, source, rejected=True)
        hint = saturation_hint(exporter, header)
        if hint:
            raise ExportValidationError(exporter.name, [*exc.failures, hint], exc.report) from None
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    entry["status"] = "ok" if entry["validation"]["passed"] else "inconclusive"
    moved = _publish(stage, out)
    entry["path"] = moved.get(entry["path"], str(out / Path(entry["path"]).name))
    entry["elapsed_s"] = time.perf_counter() - t0
    _update_export_json(out, exporter.name, entry, source)
    log(describe(exporter.name, entry))
    return entry


def saturation_hint(exporter: Any, header: ModelHeader) -> str | None:
    """What to do when an 8-bit-weight ONNX INT8 file failed on a CPU whose kernels saturate.

    ``None`` unless the format runs in ONNX Runtime on this CPU (``onnx-int8``), its weights
    use 8 bits, and the CPU is x86 with AVX2 and no VNNI (`int8_products_saturate`).
    """
    from compress.runtime.machine import int8_products_saturate

    if exporter.name != "onnx-int8" or not int8_products_saturate():
        return None
    where = (
        "this CPU (x86 AVX2 without VNNI) saturates ONNX Runtime's INT8 products of 8-bit weights"
    )
    if header.quantized:
        if header.quantization.get("reduce_range"):
            return None
        return f"{where}: quantize again with compress quantize --reduce-range (7-bit weights)"
    if exporter.settings.reduce_range:
        return None
    return f"{where}: export with --reduce-range (7-bit weights)"


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
    bounds = v.get("bounds") or {}
    if bounds.get("drop"):
        lo, hi = bounds["drop"]
        lines.append(f"| accuracy drop, 95 % bounds | {100 * lo:+.2f} to {100 * hi:+.2f} points |")
    verdict = v.get("verdict", "passed" if v.get("passed") else "failed")
    if v.get("doubts"):
        verdict += ": " + "; ".join(v["doubts"])
    lines.append(f"| verdict | {verdict} |")
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
