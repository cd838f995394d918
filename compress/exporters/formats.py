"""Deployment formats as objects: what to export, which runtime runs it, at which precision.

``compress benchmark`` names formats (``onnx-int8``, ``trt-fp16``, ...); each name resolves to
one `Format` here, so no code slices format strings. `onnx_format_for` gives the ONNX export a
precision is built from (TensorRT engines and remote builds start from it).
"""

from __future__ import annotations

from dataclasses import dataclass

from compress.registry import Registry


@dataclass(frozen=True)
class Format:
    """One deployment format.

    Attributes:
        name: what users call it (``trt-fp16``).
        exporter: the export format that produces it (``trt``), or ``None`` for ``torch`` (the
            model file itself).
        runtime: the runtime that runs it (``torch``, ``onnxruntime``, ``tensorrt``).
        precision: the precision asked of the exporter (``None``: the exporter's only one).
        summary: one line for help texts.
    """

    name: str
    exporter: str | None
    runtime: str
    precision: str | None = None
    summary: str = ""

    @property
    def built_on_device(self) -> bool:
        """Engines are specific to a GPU: for a remote target they are built there."""
        return self.runtime == "tensorrt"

    def unavailable(self) -> str | None:
        """Why this machine cannot produce or run the format, or ``None`` when it can."""
        if self.runtime != "tensorrt":
            return None
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "TensorRT is not installed here (pip install 'compress-toolkit[trt]' on a machine with an NVIDIA GPU)"
        return None


#: format name → Format
FORMATS: Registry = Registry("benchmark format")

for _format in (
    Format("torch", None, "torch", summary="the model file in PyTorch eager"),
    Format("onnx", "onnx", "onnxruntime", summary="ONNX fp32 in ONNX Runtime"),
    Format("onnx-int8", "onnx-int8", "onnxruntime", summary="Q/DQ INT8 ONNX in ONNX Runtime"),
    Format("onnx-fp16", "onnx-fp16", "onnxruntime", summary="FP16 ONNX in ONNX Runtime"),
    Format("trt-fp32", "trt", "tensorrt", "fp32", "TensorRT engine, fp32"),
    Format("trt-fp16", "trt", "tensorrt", "fp16", "TensorRT engine, fp16"),
    Format("trt-int8", "trt", "tensorrt", "int8", "TensorRT engine from the Q/DQ INT8 ONNX"),
):
    FORMATS.add(_format.name, _format)

#: The ONNX export each precision starts from.
_ONNX_FOR = {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}


def onnx_format_for(precision: str) -> str:
    """The ONNX export format of `precision` (``fp16`` → ``onnx-fp16``; unknown → ``onnx``)."""
    return _ONNX_FOR.get(precision, "onnx")


def format_names() -> list[str]:
    """Every format name, in order."""
    return FORMATS.names()
