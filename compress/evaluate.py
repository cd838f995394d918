"""``compress eval`` and ``compress info``: accuracy and facts about a model file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from compress.data.base import DataSettings
from compress.errors import CompressError


def check_compatible(header: dict[str, Any], info: Any, *, what: str = "model") -> None:
    """Raise a one-line error if a model's classes or channels do not fit a dataset."""
    if header.get("num_classes") not in (None, info.num_classes):
        raise CompressError(
            f"the {what} has {header['num_classes']} classes but {info.name} has {info.num_classes}; "
            f"use a {what} trained on {info.name} (or pass the dataset it was trained on)"
        )
    if header.get("in_channels") not in (None, info.in_channels):
        raise CompressError(
            f"the {what} takes {header['in_channels']}-channel images but {info.name} has "
            f"{info.in_channels}; use a {what} trained on {info.name}"
        )


def evaluate_model_file(
    path: str | Path,
    data: DataSettings | None = None,
    *,
    device: str = "auto",
) -> dict[str, Any]:
    """Top-1/top-5 of a saved model on the test split of its dataset (or of ``data.name``)."""
    from compress.artifacts import load_model, read_header
    from compress.data import build_loaders, load_data
    from compress.engine import evaluate, resolve_device

    header = read_header(path)
    settings = data or DataSettings()
    if data is None or not data.name:
        settings = replace(settings, name=header.get("dataset") or settings.name)
    dev = resolve_device(device)
    loaded = load_data(settings)
    info = loaded.info
    check_compatible(header, info)
    if header.get("mean") and header.get("std"):
        info = replace(info, mean=tuple(header["mean"]), std=tuple(header["std"]))
        loaded = replace(loaded, info=info)
    model = load_model(path, device=dev)
    _, test_loader = build_loaders(loaded, settings, device=dev)
    result = evaluate(model, test_loader)
    return {"model": str(path), "dataset": info.name, **result}


def model_file_info(path: str | Path) -> dict[str, Any]:
    """Header, size, hash, parameter and MAC counts of a model file."""
    from compress.artifacts import file_sha256, load_model
    from compress.models import count_params
    from compress.models.stats import count_macs, model_input_shape

    model = load_model(path)
    header = model.compress_header
    shape = model_input_shape(model)
    return {
        "file": str(path),
        "size_bytes": Path(path).stat().st_size,
        "sha256": file_sha256(path),
        "arch": header.get("arch"),
        "params": count_params(model),
        "macs": count_macs(model, shape),
        "input_shape": list(shape),
        "num_classes": header.get("num_classes"),
        "dataset": header.get("dataset"),
        "mean": header.get("mean"),
        "std": header.get("std"),
        "metrics": header.get("metrics"),
        "pruned": bool(header.get("pruning")),
        "provenance": header.get("provenance"),
    }
