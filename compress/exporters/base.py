"""The Exporter base: what each format supports, export settings, and the export template."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from compress.config import NO_HASH
from compress.errors import CompressError
from compress.header import ModelHeader
from compress.registry import Registry

#: format name → Exporter subclass
EXPORTERS: Registry = Registry("export format")


@dataclass
class BatchSpec:
    """The batch sizes an export must serve: ``MIN:OPT:MAX`` (TensorRT's optimisation profile)."""

    min: int = 1
    opt: int = 32
    max: int = 64

    @classmethod
    def parse(cls, text: str) -> BatchSpec:
        """``"1:32:64"`` → BatchSpec(1, 32, 64); a single ``"8"`` means 8:8:8.

        Raises:
            CompressError: for anything but 1 or 3 positive integers with MIN ≤ OPT ≤ MAX.
        """
        parts = str(text).strip().split(":")
        if len(parts) not in (1, 3) or not all(re.fullmatch(r"\d+", p) for p in parts):
            raise CompressError(
                f"--batch expects MIN:OPT:MAX (e.g. 1:32:64) or one size, got '{text}'"
            )
        values = [int(p) for p in parts] * (3 if len(parts) == 1 else 1)
        lo, opt, hi = values
        if lo < 1 or not lo <= opt <= hi:
            raise CompressError(f"--batch needs 1 ≤ MIN ≤ OPT ≤ MAX, got '{text}'")
        return cls(lo, opt, hi)

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


@dataclass
class CommonExportSettings:
    """What every format takes.

    Attributes:
        format: the export format (``onnx``, ``onnx-int8``, ``onnx-fp16``, ``trt`` or
            ``trt-fp32`` / ``trt-fp16`` / ``trt-int8``); comma-separated for several.
        opset: ONNX opset (17: the highest JetPack 5's TensorRT 8.5 reads).
        batch: ``MIN:OPT:MAX`` batch sizes (TensorRT profile; ONNX files always have a dynamic
            batch axis).
        validate_images: real evaluation images the export is validated on.
        data_dir: where the model's dataset is (for calibration and validation).
    """

    format: str = "onnx"
    opset: int = 17
    batch: str = "1:32:64"
    validate_images: int = 1000
    data_dir: str | None = field(default=None, metadata=NO_HASH)

    def __post_init__(self) -> None:
        if self.validate_images < 1:
            raise ValueError("validate_images must be ≥ 1")
        if not 7 <= self.opset <= 21:
            raise ValueError(f"opset must be between 7 and 21, got {self.opset}")
        BatchSpec.parse(self.batch)  # a bad spec fails where it is given

    @classmethod
    def from_export(cls, config: Any) -> Any:
        """This format's settings from a (flat) `ExportSettings`: given values, else defaults."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        given = {
            f.name: getattr(config, f.name)
            for f in dataclasses.fields(config)
            if f.name in names and getattr(config, f.name) is not None
        }
        return cls(**given)


@dataclass
class Int8Settings(CommonExportSettings):
    """The settings of INT8 Q/DQ quantisation (``onnx-int8``, and the source of ``trt-int8``).

    Attributes:
        calib_images: real training images used to calibrate INT8 activations.
        calib_method: ``minmax``, ``entropy`` or ``percentile``.
        activation_type: INT8 activations as ``int8`` (symmetric; what TensorRT needs) or
            ``uint8`` (asymmetric; often faster on x86 CPUs without VNNI).
        reduce_range: 7-bit weights (ONNX Runtime's ``reduce_range``): exact INT8 on x86 CPUs
            without VNNI (AVX2), whose uint8 × int8 products saturate in 16 bits with 8-bit
            weights; not needed with VNNI, AMX, on ARM or TensorRT. Post-training only: a
            quantized model's weight range is its own (``compress quantize --reduce-range``).
        float_first_last: keep the first conv and the classifier in float (default: all-INT8
            lost 2.8 points on the quickstart's digits student; see docs/deploy.md).
        float_depthwise: keep every depthwise convolution (a Conv whose ``group`` is above 1) in
            float as well; MobileNet-style models lose the most accuracy there.
        auto_precision: when the export fails validation, rank the tensors by how much INT8
            damages them (SQNR on calibration images) and keep the nodes around the worst in
            float — 1, 2, 4, … units of them — until it passes; stop (and fail) once the INT8
            file runs slower than ``auto_precision_min_speedup`` × fp32 on this CPU.
        auto_precision_min_speedup: the speed against fp32 below which `auto_precision` stops
            (1.0: INT8 must at least match fp32; 0 never stops on speed).
        compare_speed: time the fp32 and INT8 files in ONNX Runtime on this CPU at the batch's
            MAX size (at most 64) and record both in ``export.json`` (``speed_vs_fp32``).
        qdq_placement: for a quantization-aware-trained model (``compress quantize``), where the
            Q/DQ pairs go: ``trt`` (only where the model quantizes, all learned: TensorRT's
            explicit quantization; ``trt-int8`` always builds from this) or ``ort`` (every
            INT8-able tensor, as ONNX Runtime's quantiser places them, with the learned
            parameters wherever a learned quantizer covers the tensor and calibrated ones
            elsewhere: fused INT8 kernels in ONNX Runtime). Unset: ``ort`` for a model quantized
            with ``--activation-type uint8`` (ONNX Runtime's flavour), else ``trt``. Refused for
            a float model.
    """

    calib_images: int = 512
    calib_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    activation_type: Literal["int8", "uint8"] = "uint8"
    reduce_range: bool = False
    float_first_last: bool = True
    float_depthwise: bool = False
    auto_precision: bool = False
    auto_precision_min_speedup: float = 1.0
    compare_speed: bool = field(default=True, metadata=NO_HASH)
    qdq_placement: Literal["ort", "trt"] = "trt"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.calib_images < 1:
            raise ValueError("calib_images must be ≥ 1")


@dataclass
class TensorRTSettings(Int8Settings):
    """The settings of a TensorRT engine build (INT8 engines take the Q/DQ settings too).

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8`` (default fp16).
        workspace_gb: TensorRT builder workspace limit.
        timing_cache: TensorRT timing-cache file, reused and updated across builds.
        optimization_level: TensorRT builder optimisation level (0–5), where the version has it.
    """

    precision: Literal["fp32", "fp16", "int8"] = "fp16"
    workspace_gb: float = 2.0
    timing_cache: str | None = field(default=None, metadata=NO_HASH)
    optimization_level: int | None = None


@dataclass
class ExportSettings:
    """How to export, as one flat set of keys (the YAML / ``--set`` form).

    Each format takes the keys of its own settings class (`CommonExportSettings`,
    `Int8Settings`, `TensorRTSettings`); a key left unset (``null``) takes that format's
    default, and a key given to a format that does not take it is a one-line error
    (`check_applicable`). The attributes are documented on those classes.
    """

    format: str = "onnx"
    precision: Literal["fp32", "fp16", "int8"] | None = None
    opset: int = 17
    batch: str = "1:32:64"
    calib_images: int | None = None
    calib_method: Literal["minmax", "entropy", "percentile"] | None = None
    activation_type: Literal["int8", "uint8"] | None = None
    reduce_range: bool | None = None
    float_first_last: bool | None = None
    float_depthwise: bool | None = None
    auto_precision: bool | None = None
    auto_precision_min_speedup: float | None = None
    compare_speed: bool | None = field(default=None, metadata=NO_HASH)
    qdq_placement: Literal["ort", "trt"] | None = None
    workspace_gb: float | None = None
    timing_cache: str | None = field(default=None, metadata=NO_HASH)
    optimization_level: int | None = None
    validate_images: int = 1000
    data_dir: str | None = field(default=None, metadata=NO_HASH)

    def __post_init__(self) -> None:
        if self.validate_images < 1 or (self.calib_images is not None and self.calib_images < 1):
            raise ValueError("calib_images and validate_images must be ≥ 1")
        if not 7 <= self.opset <= 21:
            raise ValueError(f"opset must be between 7 and 21, got {self.opset}")


def check_applicable(config: ExportSettings, exporters: list[Any]) -> None:
    """Refuse a format-specific key that none of the requested formats takes.

    ``compress export M --format onnx --auto-precision`` is then one line naming the format
    that takes ``--auto-precision``, instead of a flag silently ignored.

    Raises:
        CompressError: the first such key, with the formats that take it.
    """
    common = {f.name for f in dataclasses.fields(CommonExportSettings)}
    takes = {name for e in exporters for name in e.options()}
    for f in dataclasses.fields(ExportSettings):
        if f.name in common or getattr(config, f.name) is None or f.name in takes:
            continue
        owners = [n for n in EXPORTERS.names() if f.name in EXPORTERS.get(n).options()]
        flag = "--" + f.name.replace("_", "-")
        asked = ", ".join(e.name for e in exporters)
        raise CompressError(
            f"{flag} applies to {' and '.join(owners) or 'no format'}, not {asked}; drop it or "
            f"export {owners[0] if owners else 'another format'}"
        )


@dataclass
class ExportContext:
    """What an exporter gets besides the model: data for calibration and validation."""

    model_path: Path
    header: ModelHeader
    calib_images: Any = None  # numpy float32 (N, C, H, W), normalised
    out_dir: Path = Path(".")
    log: Any = print
    float_nodes: tuple[str, ...] = ()  # onnx-int8: nodes kept in float beyond the defaults


class Exporter:
    """One export format. Subclasses set the class attributes and implement `_export_impl`.

    `export` checks that the format can run here, times the export and returns the paths.
    Validation against PyTorch is done by `compress.exporters.validate` for every format. A
    format declares its settings class (``settings_cls``); it is built from the flat
    `ExportSettings` (given keys, else the class's defaults).
    """

    name: ClassVar[str]
    settings_cls: ClassVar[type] = CommonExportSettings
    #: the runtime that runs this format's files (`compress.runtime.runners`)
    runtime: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    dynamic_batch: ClassVar[bool] = True
    needs_gpu: ClassVar[bool] = False

    def __init__(self, settings: Any) -> None:
        if not isinstance(settings, self.settings_cls):
            settings = self.settings_cls.from_export(settings)
        self.settings = settings
        self.precision = getattr(settings, "precision", None) or self.precisions[0]
        if self.precision not in self.precisions:
            raise CompressError(
                f"format '{self.name}' supports precision {', '.join(self.precisions)}, not '{self.precision}'"
            )

    @classmethod
    def options(cls) -> set[str]:
        """The `ExportSettings` keys this format takes."""
        return {f.name for f in dataclasses.fields(cls.settings_cls) if f.init}

    def check_available(self) -> None:
        """Raise a one-line `CompressError` when this format cannot be produced on this machine."""

    def output_name(self) -> str:
        """File name of the export inside the output directory."""
        raise NotImplementedError

    def export(self, model: Any, ctx: ExportContext) -> dict[str, Any]:
        """Export `model`; returns ``{"path", "seconds", ...}`` (format-specific extras)."""
        self.check_available()
        t0 = time.perf_counter()
        extra = self._export_impl(model, ctx, ctx.out_dir / self.output_name())
        return {
            "path": str(ctx.out_dir / self.output_name()),
            "seconds": time.perf_counter() - t0,
            **extra,
        }

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def make_runner(self, path: Path) -> Any:
        """The `Runner` that validation runs the export with (``runner.infer(images)``)."""
        from compress.runtime.runners import make_runner

        return make_runner(self.runtime, str(path))


@dataclass
class ExportConfig(ExportSettings):
    """``compress export`` settings: the model file, the output directory, and `ExportSettings`."""

    config_order: ClassVar[tuple[str, ...]] = ("model", "format", "precision")

    model: str | None = None
    output: str | None = field(default=None, metadata=NO_HASH)


#: Modules of this package that are not export formats.
_NOT_FORMATS = {
    "api", "auto_precision", "base", "calibration", "formats", "gate", "sensitivity", "validate",
}  # fmt: skip


def load_formats() -> None:
    """Import every format module of `compress.exporters` (each registers itself in EXPORTERS).

    A new format is one module in this package: an `Exporter` subclass and its
    ``EXPORTERS.add``; nothing else names it.
    """
    import importlib
    import pkgutil

    import compress.exporters as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_FORMATS:
            importlib.import_module(f"{package.__name__}.{module.name}")
