"""ONNX export of a compress model with a dynamic batch axis, a pinned opset and provenance."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compress.artifacts import atomic_path
from compress.errors import CompressError
from compress.exporters.base import EXPORTERS, ExportContext, Exporter
from compress.header import ModelHeader

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17  # JetPack 5's TensorRT 8.5 reads opset ≤ 17


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: Sequence[int],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export `model` (eval mode, on CPU) to one self-contained ONNX file, atomically.

    The input is ``input`` (N, C, H, W) float32, normalised as the model's header says; the
    output is ``logits`` (N, classes). With `dynamic_batch` the batch axis is symbolic.
    `metadata` entries are stored as ONNX ``metadata_props`` (values JSON-encoded unless str).

    Uses torch's TorchScript-based exporter, which honours opsets below 18 (the dynamo exporter
    always writes opset ≥ 18); falls back to the dynamo exporter where the former is gone.
    """
    import onnx

    model = model.eval().cpu()
    example = torch.zeros(1, *input_shape)
    target = Path(path)
    with atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs: dict[str, Any] = {
            "input_names": [INPUT_NAME],
            "output_names": [OUTPUT_NAME],
            "opset_version": opset,
        }
        try:
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                if dynamic_batch
                else None,
                do_constant_folding=True,
                **kwargs,
            )
        except (TypeError, RuntimeError, ImportError):  # no TorchScript exporter in this torch
            dims = ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic_batch else None
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=True,
                dynamic_shapes=dims,
                external_data=False,
                **kwargs,
            )
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = proto.metadata_props.add()
            entry.key = key
            entry.value = value if isinstance(value, str) else json.dumps(value)
        onnx.save(proto, str(tmp))
    return target


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def provenance(ctx: Any, *, fmt: str, precision: str) -> dict[str, Any]:
    """The metadata every exported file carries: where it came from and how to feed it."""
    from compress._version import __version__
    from compress.artifacts import file_sha256

    header = ctx.header
    return {
        "toolkit_version": __version__,
        "format": fmt,
        "precision": precision,
        "source": {"path": str(ctx.model_path), "sha256": file_sha256(ctx.model_path)},
        "config_hash": header.provenance.get("config_hash"),
        "input_shape": list(header.input_shape),
        "header": header.to_dict(),
    }


def onnx_header(path: str | Path) -> ModelHeader | None:
    """The model header an exported ONNX file carries (``None`` for a foreign ONNX file).

    Raises:
        CompressError: the file is not a readable ONNX model.
    """
    try:
        raw = onnx_metadata(path).get("compress")
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CompressError(f"'{path}' is not a readable ONNX model ({first})") from None
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(meta, dict) or "header" not in meta:
        return None
    return ModelHeader.from_dict(meta["header"], source=str(path))


class OnnxExporter(Exporter):
    """fp32 ONNX with a dynamic batch axis and provenance metadata."""

    name = "onnx"
    precisions = ("fp32",)

    def output_name(self) -> str:
        """``model.onnx``."""
        return "model.onnx"

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        meta = provenance(ctx, fmt=self.name, precision=self.precision)
        export_onnx(
            model,
            path,
            ctx.header.input_shape,
            opset=self.settings.opset,
            metadata={"compress": meta},
        )
        return {"opset": self.settings.opset}


EXPORTERS.add("onnx", OnnxExporter, summary="ONNX fp32, dynamic batch (any runtime)")
