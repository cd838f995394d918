"""``compress eval`` and ``compress info``: accuracy and facts about a model file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from compress.data.base import DataSettings
from compress.errors import CompressError
from compress.header import ModelHeader


def check_compatible(header: ModelHeader, info: Any, *, what: str = "model") -> None:
    """Raise a one-line error if a model's classes or channels do not fit a dataset."""
    if header.num_classes != info.num_classes:
        raise CompressError(
            f"the {what} has {header.num_classes} classes but {info.name} has {info.num_classes}; "
            f"use a {what} trained on {info.name} (or pass the dataset it was trained on)"
        )
    if header.in_channels != info.in_channels:
        raise CompressError(
            f"the {what} takes {header.in_channels}-channel images but {info.name} has "
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
        settings = replace(settings, name=header.dataset or settings.name)
    dev = resolve_device(device)
    loaded = load_data(settings)
    info = loaded.info
    check_compatible(header, info)
    if header.mean and header.std:
        info = replace(info, mean=header.mean, std=header.std)
        loaded = replace(loaded, info=info)
    model = load_model(path, device=dev)
    _, test_loader = build_loaders(loaded, settings, device=dev)
    result = evaluate(model, test_loader)
    return {"model": str(path), "dataset": info.name, **result}


def model_file_info(path: str | Path) -> dict[str, Any]:
    """Header, size, hash, parameter and MAC counts of a model file."""
    from compress.artifacts import file_sha256, load_model
    from compress.models import count_params
    from compress.models.stats import count_macs

    model = load_model(path)
    header: ModelHeader = model.compress_header
    shape = header.input_shape
    return {
        "file": str(path),
        "size_bytes": Path(path).stat().st_size,
        "sha256": file_sha256(path),
        "arch": {"name": header.arch, "kwargs": header.arch_kwargs},
        "params": count_params(model),
        "macs": count_macs(model, shape),
        "input_shape": list(shape),
        "num_classes": header.num_classes,
        "dataset": header.dataset,
        "mean": list(header.mean) if header.mean else None,
        "std": list(header.std) if header.std else None,
        "metrics": header.metrics,
        "pruned": header.pruned,
        "provenance": header.provenance,
    }
