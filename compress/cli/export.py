"""``compress export``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.exporters.base import ExportConfig, Int8Settings, TensorRTSettings

FLAGS = (
    Flag("--format", "format", "onnx, onnx-int8, onnx-fp16, trt, trt-fp32, trt-fp16 or trt-int8; comma-separate several."),
    Flag("--precision", "precision", "trt only: fp16 (the default), fp32 or int8.", show_default=False),
    Flag("--batch", "batch", "MIN:OPT:MAX batch sizes (TensorRT profile)."),
    Flag("--opset", "opset", "ONNX opset."),
    Flag("--calib-images", "calib_images", f"INT8: real training images for calibration (default {Int8Settings.calib_images})."),
    Flag("--calib-method", "calib_method", f"INT8: minmax, entropy or percentile (default {Int8Settings.calib_method})."),
    Flag("--activation-type", "activation_type", "INT8 activations: uint8 (the default, fastest on x86 CPUs) or int8 (TensorRT)."),
    Flag("--reduce-range", "reduce_range", "INT8: 7-bit weights, exact in ONNX Runtime on x86 CPUs without VNNI (AVX2), where 8-bit weights saturate its u8s8 kernels."),
    Flag("--float-first-last/--all-int8", "float_first_last", "INT8: keep the first conv and the classifier in float (the default), or quantise every layer."),
    Flag("--float-depthwise", "float_depthwise", "INT8: keep depthwise (grouped) convolutions in float too."),
    Flag("--auto-precision", "auto_precision", "INT8: if validation fails, keep the nodes INT8 damages most in float until it passes."),
    Flag("--compare-speed/--no-compare-speed", "compare_speed", "INT8: time fp32 and INT8 ONNX on this CPU at the MAX batch, at most 64 (on by default)."),
    Flag("--qdq-placement", "qdq_placement", "A quantize'd model's onnx-int8: trt (Q/DQ only where the model quantizes: TensorRT's explicit quantization; the default for --activation-type int8) or ort (Q/DQ on every INT8-able tensor, learned scales where learned: fused INT8 kernels in ONNX Runtime; the default for a model quantized with --activation-type uint8)."),
    Flag("--workspace-gb", "workspace_gb", f"trt: builder workspace limit (default {TensorRTSettings.workspace_gb})."),
    Flag("--data-dir", "data_dir", "Where the model's dataset is.", kind="dir"),
    Flag("--output", "output", "Output directory.", short="-o", kind="dir"),
)  # fmt: skip


@click.command("export")
@click.argument("model", type=click.Path(), required=False)
@config_options
@options(FLAGS, ExportConfig)
def export(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """Export a model file to ONNX, INT8 ONNX, FP16 ONNX or a TensorRT engine, and validate it.

    Every export is checked against PyTorch on real test images (output error within the
    precision's tolerance, top-1 agreement, accuracy change with its 95 % bounds, and for pruned
    models the exported weight count). A failed export is kept aside in FORMAT.rejected/ and
    never replaces a good one. Writes the file(s) and DIR/export.json.
    """
    from compress.verbs import VERBS

    overrides_ = {"model": model, **overrides(FLAGS, kw)}
    config = resolve_config(ExportConfig, config_path, overrides_, assignments)
    result = VERBS.get("export")(config, log=echo)
    first = next(iter(result["formats"].values()))
    echo(f"next: compress profile {first['path']}")
