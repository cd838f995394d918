"""TensorRT engines built with TensorRT's Python API from the ONNX exports.

The build logic (feature detection, the build recipe, the engine sidecar and its checks) lives
in `compress.runtime.engines`, because the same code builds engines on a remote device. This
module only chooses the ONNX source, runs the build locally, and validates the result through
the one runner contract (`make_runner("tensorrt", path)`, which checks the sidecar first).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from compress.errors import CompressError
from compress.exporters.base import (
    EXPORTERS,
    BatchSpec,
    ExportContext,
    Exporter,
    TensorRTSettings,
)
from compress.runtime import engines
from compress.runtime.cuda import gpu_identity
from compress.runtime.errors import AgentError

ON_DEVICE_HINT = (
    "engines are specific to a GPU and TensorRT version, so for a remote device build it there: "
    "compress profile MODEL.onnx --runtime tensorrt --target ssh://user@device"
)


def require_tensorrt() -> Any:
    """The tensorrt module and a visible GPU, or a one-line error naming the extra and the on-device route."""
    try:
        trt = engines.import_tensorrt()
    except AgentError:
        raise CompressError(
            "--format trt needs TensorRT and an NVIDIA GPU: pip install 'compress-toolkit[trt]' on such a "
            f"machine (JetPack ships TensorRT on Jetson); {ON_DEVICE_HINT}"
        ) from None
    if gpu_identity() is None:
        raise CompressError(
            f"--format trt needs an NVIDIA GPU and none is visible here; {ON_DEVICE_HINT}"
        )
    return trt


class TensorRTExporter(Exporter):
    """A serialized TensorRT engine (``.plan``) plus a sidecar JSON describing what it was built for."""

    name = "trt"
    runtime = "tensorrt"
    settings_cls = TensorRTSettings
    precisions = ("fp16", "fp32", "int8")
    needs_gpu = True

    def check_available(self) -> None:
        """TensorRT importable and a GPU visible."""
        require_tensorrt()

    def output_name(self) -> str:
        """``model.<precision>.plan``."""
        return f"model.{self.precision}.plan"

    def recipe(self, ctx: ExportContext, features: list[str]) -> dict[str, Any]:
        """The build recipe for this export (pure; see `compress.runtime.engines.build_recipe`)."""
        b = BatchSpec.parse(self.settings.batch)
        return engines.build_recipe(
            self.precision,
            (b.min, b.opt, b.max),
            ctx.header.input_shape,
            features=features,
            workspace_gb=self.settings.workspace_gb,
            optimization_level=self.settings.optimization_level,
        )

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        import json

        from compress.exporters.formats import onnx_format_for

        trt = require_tensorrt()
        recipe = self.recipe(ctx, engines.probe_features(trt))
        source_cls = EXPORTERS.get(onnx_format_for(recipe["source"]))
        settings = self.settings
        if recipe["source"] == "int8" and settings.qdq_placement != "trt":
            from dataclasses import replace  # TensorRT fuses the learned placement as it is

            settings = replace(settings, qdq_placement="trt")
        if recipe["source"] == "int8" and settings.activation_type != "int8":
            ctx.log(
                "TensorRT needs symmetric int8 activations: calibrating the Q/DQ source with activation_type int8"
            )
            from dataclasses import replace

            settings = replace(settings, activation_type="int8")
        with tempfile.TemporaryDirectory() as tmp:
            src_ctx = ExportContext(
                ctx.model_path, ctx.header, ctx.calib_images, Path(tmp), ctx.log
            )
            source = source_cls(settings).export(model, src_ctx)["path"]
            for note in recipe["notes"]:
                ctx.log(f"TensorRT: {note}")
            engines.build_engine(
                source, str(path), recipe, timing_cache=self.settings.timing_cache, log=ctx.log
            )
            sidecar = engines.engine_sidecar(
                recipe,
                tensorrt_version=trt.__version__,
                gpu=gpu_identity(),
                source_sha256=engines.file_sha256(str(ctx.model_path)),
            )
        from compress.artifacts import atomic_write_text

        sidecar = {**sidecar, "header": ctx.header.to_dict()}  # a .plan describes its model
        atomic_write_text(str(path) + ".json", json.dumps(sidecar, indent=2))
        return {"sidecar": sidecar, "recipe": recipe}


EXPORTERS.add(
    "trt",
    TensorRTExporter,
    summary="TensorRT engine fp32/fp16/int8 (needs TensorRT and an NVIDIA GPU)",
)
