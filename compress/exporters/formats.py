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


#: Names users reach for that mean an export format: said as a suggestion.
SYNONYMS = {"tensorrt": "trt", "engine": "trt", "int8": "onnx-int8", "fp16": "onnx-fp16"}


def resolve_export(name: str, precision: str | None) -> tuple[str, str | None]:
    """The exporter and precision an export format name asks for.

    ``trt-int8`` is ``trt`` at ``int8`` (the name ``compress benchmark`` uses), ``trt`` takes
    ``--precision``; every other format has its one precision.

    Raises:
        CompressError: an unknown name (with a suggestion) or a precision that contradicts it.
    """
    from compress.errors import CompressError, UnknownNameError
    from compress.exporters.base import EXPORTERS

    if name in SYNONYMS:
        raise UnknownNameError(
            f"unknown export format '{name}'. Did you mean '{SYNONYMS[name]}'? Valid: "
            f"{', '.join(export_names())}"
        )
    if name in EXPORTERS:
        return name, precision
    fmt = FORMATS.get(name) if name in FORMATS else None
    if fmt is None or fmt.exporter is None:
        EXPORTERS.get(name)  # the registry's message: a suggestion and the valid names
    if precision is not None and fmt.precision is not None and precision != fmt.precision:
        raise CompressError(
            f"--format {name} is {fmt.precision}, but --precision says {precision}; give one"
        )
    return fmt.exporter, fmt.precision or precision


def export_names() -> list[str]:
    """Every name ``compress export --format`` takes."""
    from compress.exporters.base import EXPORTERS

    names = list(EXPORTERS.names())
    names += [n for n in FORMATS.names() if FORMATS.get(n).exporter and n not in names]
    return names
