"""``compress quantize``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.quantize.config import OBJECTIVES, QuantizeConfig

FLAGS = (
    Flag("--teacher", "teacher", "Teacher of the objective (the float model itself if unset).", kind="file"),
    Flag("--method", "method", f"Objective: {', '.join(OBJECTIVES)} (none: plain QAT)."),
    Flag("--preset", "preset", "Named method settings, e.g. faithful (R2KD)."),
    Flag("--epochs", "epochs", "Fine-tuning epochs."),
    Flag("--calib-images", "calib_images", "Training images that set the initial scales."),
    Flag("--activation-type", "activation_type", "int8 (symmetric: TensorRT) or uint8 (a ReLU's output unsigned: ONNX Runtime on a CPU fuses it)."),
    Flag("--reduce-range", "reduce_range", "7-bit weights: exact INT8 in ONNX Runtime on x86 CPUs without VNNI (AVX2), where 8-bit weights saturate its u8s8 kernels."),
    Flag("--observe", "observe", "Fraction of the epochs in which the observers move the scales."),
    Flag("--lr", "optim.lr", "Fine-tuning learning rate (cosine)."),
    Flag("--batch-size", "data.batch_size", "Batch size."),
    Flag("--data-dir", "data.data_dir", "Where the model's dataset is.", kind="dir"),
    Flag("--seed", "seed", "Random seed."),
    Flag("--device", "device", "auto, cpu, cuda or cuda:N."),
    Flag("--output", "output", "Run directory.", short="-o", kind="dir"),
    Flag("--resume", "resume", "Continue the run in --output."),
)  # fmt: skip


@click.command("quantize")
@click.argument("model", type=click.Path(), required=False)
@config_options
@options(FLAGS, QuantizeConfig)
def quantize(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """Quantization-aware training / distillation: an INT8 model that keeps fp32's accuracy.

    Inserts fake quantization the way TensorRT's explicit quantization places it (symmetric
    INT8, per-channel weights, per-tensor activations at the inputs of conv/linear layers and of
    residual adds; BatchNorm folded), calibrates the scales on real training images, then
    fine-tunes with the objective (KD from the float model by default). Writes
    DIR/model.safetensors carrying its quantization (compress export --format onnx-int8 writes
    it with the learned scales) and summary.json with the fp32 and INT8 top-1.
    """
    from compress.verbs import VERBS

    given = {"model": model, **overrides(FLAGS, kw)}
    config = resolve_config(QuantizeConfig, config_path, given, assignments)
    from compress.distributed import rank_log

    result = VERBS.get("quantize")(config, log=echo)
    say = rank_log(echo)  # under torchrun, once
    say(f"next: compress export {result['output']}/model.safetensors --format onnx-int8")
