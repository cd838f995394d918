"""FP16 ONNX (weights and activations in half precision; inputs and outputs stay float32)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from compress.artifacts import atomic_path
from compress.exporters.base import EXPORTERS, ExportContext, Exporter
from compress.exporters.onnx import export_onnx, provenance


class OnnxFp16Exporter(Exporter):
    """FP16 weights and activations (inputs/outputs stay float32), for GPU runtimes."""

    name = "onnx-fp16"
    precisions = ("fp16",)

    def output_name(self) -> str:
        """The file name inside the output directory."""
        return "model.fp16.onnx"

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        import json

        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(
                model, Path(tmp) / "fp32.onnx", ctx.header.input_shape, opset=self.settings.opset
            )
            proto = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key = "compress"
        entry.value = json.dumps(provenance(ctx, fmt=self.name, precision="fp16"))
        with atomic_path(path) as out:
            onnx.save(proto, str(out))
        return {"opset": self.settings.opset}


EXPORTERS.add(
    "onnx-fp16", OnnxFp16Exporter, summary="ONNX FP16 with float32 inputs/outputs (GPU runtimes)"
)
