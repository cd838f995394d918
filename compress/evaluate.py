"""``compress eval`` and ``compress info``: accuracy and facts about a model file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.config import NO_HASH
from compress.data.base import DataSettings
from compress.header import ModelHeader


@dataclass
class EvalConfig:
    """Everything ``compress eval`` needs.

    Attributes:
        model: the model file.
        data: the test data; unset fields (``name`` empty, ``image_size``, ``mean``/``std``)
            come from the model file, so a model is measured at the geometry it was trained at.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """

    model: str | None = None
    data: DataSettings = field(default_factory=lambda: DataSettings(name=""))
    device: str = field(default="auto", metadata=NO_HASH)


def evaluate_model_file(
    path: str | Path,
    data: DataSettings | None = None,
    *,
    device: str = "auto",
) -> dict[str, Any]:
    """Top-1/top-5 of a saved model on the test split of its dataset (or of ``data.name``).

    The images are loaded at the size and normalisation the model file records unless `data`
    sets them (`compress.data.load_data_for_model`).

    Raises:
        CompressError: the data does not fit the model (classes, channels, image size).
    """
    from compress.artifacts import load_model, read_header
    from compress.data import build_loaders, load_data_for_model, settings_for_model
    from compress.engine import evaluate, resolve_device

    header = read_header(path)
    settings = settings_for_model(header, data)
    loaded = load_data_for_model(header, data)
    dev = resolve_device(device)
    model = load_model(path, device=dev)
    _, test_loader = build_loaders(loaded, settings, device=dev)
    result = evaluate(model, test_loader)
    return {"model": str(path), "dataset": loaded.info.name, **result}


def model_file_info(path: str | Path) -> dict[str, Any]:
    """Header, size, hash, parameter and MAC counts of a model file."""
    from compress.artifacts import file_sha256, load_model
    from compress.models import count_params
    from compress.models.stats import count_macs

    model = load_model(path)
    header: ModelHeader = model.compress_header
    shape = header.input_shape
    try:
        macs = count_macs(model, shape)
    except Exception:  # a traced, fake-quantized graph the counter cannot walk
        macs = None
    return {
        "file": str(path),
        "size_bytes": Path(path).stat().st_size,
        "sha256": file_sha256(path),
        "arch": {"name": header.arch, "kwargs": header.arch_kwargs},
        "params": count_params(model),
        "macs": macs,
        "input_shape": list(shape),
        "num_classes": header.num_classes,
        "dataset": header.dataset,
        "mean": list(header.mean) if header.mean else None,
        "std": list(header.std) if header.std else None,
        "metrics": header.metrics,
        "pruned": header.pruned,
        "quantization": header.quantization,
        "class_names": list(header.class_names) if header.class_names else None,
        "provenance": header.provenance,
    }
