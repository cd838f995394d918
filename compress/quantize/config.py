"""``compress quantize`` settings (readable without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from compress.config import NO_HASH
from compress.data.base import DataSettings
from compress.engine.settings import OptimSettings, ScheduleSettings, TrainSettings

#: Objectives `compress quantize` takes: the logit methods (feature methods hook named stage
#: modules, which the traced, fake-quantized graph does not call as whole modules).
OBJECTIVES = ("none", "kd", "dist", "dkd", "r2kd")


@dataclass
class QuantizeConfig(TrainSettings):
    """Everything ``compress quantize`` needs.

    Attributes:
        model: the float model file to quantize (a pruned one too: its pruning replays first).
        teacher: the teacher of the distillation objective; unset: the float model itself
            (self-distillation, quantization-aware distillation's default).
        method: the objective: ``kd`` (default), ``dist``, ``dkd``, ``r2kd`` (its pruned teacher
            copy included) or ``none`` (plain QAT, cross-entropy on the labels).
        preset: named method settings (e.g. ``faithful`` for R2KD).
        method_args: the method's settings.
        calib_images: training images that set the initial scales (the PTQ calibration).
        activation_type: ``int8`` (symmetric activations: TensorRT's convention, what
            ``trt-int8`` needs) or ``uint8`` (a ReLU's output unsigned, so ONNX Runtime on a CPU
            fuses convolution and quantizer into one INT8 kernel).
        reduce_range: 7-bit weights (every weight on [-63, 63]): exact in ONNX Runtime's INT8
            kernels on x86 CPUs without VNNI (AVX2), whose uint8 × int8 products saturate in
            16 bits with 8-bit weights; not needed with VNNI, AMX, on ARM or TensorRT.
        observe: fraction of the epochs during which the activation scales keep moving with
            the training batches (0: fixed at their calibrated values, the default); the
            weight scales always follow the weights.
        data: batching; ``name`` empty = the model's dataset, at its recorded geometry.
        epochs: fine-tuning epochs.
        optim: the fine-tuning optimiser (a small learning rate: the model is trained).
        schedule: the fine-tuning schedule.
        output: run directory.
        resume: continue the run in ``output``.
    """

    config_order: ClassVar[tuple[str, ...]] = ("model", "teacher", "method", "epochs")

    model: str | None = field(default=None, metadata=NO_HASH)  # its SHA-256 is hashed instead
    teacher: str | None = field(default=None, metadata=NO_HASH)
    method: str = "kd"
    preset: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    calib_images: int = 512
    activation_type: Literal["int8", "uint8"] = "int8"
    reduce_range: bool = False
    observe: float = 0.0
    data: DataSettings = field(default_factory=lambda: DataSettings(name=""))
    epochs: int = 10
    optim: OptimSettings = field(default_factory=lambda: OptimSettings(lr=0.001))
    schedule: ScheduleSettings = field(default_factory=lambda: ScheduleSettings(name="cosine"))
    output: str | None = field(default=None, metadata=NO_HASH)
    resume: bool = field(default=False, metadata=NO_HASH)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in OBJECTIVES:
            from compress.registry import suggest

            raise ValueError(
                f"compress quantize takes the logit objectives {', '.join(OBJECTIVES)}, not "
                f"'{self.method}'.{suggest(self.method, list(OBJECTIVES))} Feature methods read "
                "named stages, which the fake-quantized graph does not call as whole modules"
            )
        if self.calib_images < 1:
            raise ValueError(f"calib_images must be ≥ 1, got {self.calib_images}")
        if not 0.0 <= self.observe <= 1.0:
            raise ValueError(f"observe must be in [0, 1], got {self.observe}")
