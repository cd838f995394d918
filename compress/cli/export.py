"""``compress export``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config


@click.command("export")
@click.argument("model", type=click.Path(), required=False)
@config_options
@click.option(
    "--format", "fmt", help="onnx (default), onnx-int8, onnx-fp16 or trt; comma-separate several."
)
@click.option("--precision", help="trt only: fp16 (default), fp32 or int8.")
@click.option("--batch", help="MIN:OPT:MAX batch sizes (TensorRT profile), default 1:32:64.")
@click.option("--opset", type=int, help="ONNX opset (default 17).")
@click.option(
    "--calib-images", type=int, help="INT8: real training images for calibration (default 512)."
)
@click.option("--calib-method", help="INT8: minmax (default), entropy or percentile.")
@click.option(
    "--activation-type",
    help="INT8 activations: uint8 (default, fastest on x86 CPUs) or int8 (TensorRT).",
)
@click.option(
    "--float-first-last/--all-int8",
    default=None,
    help="INT8: keep the first conv and the classifier in float (default), or quantise every layer.",
)
@click.option(
    "--float-depthwise",
    is_flag=True,
    default=None,
    help="INT8: keep depthwise (grouped) convolutions in float too.",
)
@click.option(
    "--auto-precision",
    is_flag=True,
    default=None,
    help="INT8: if validation fails, keep the nodes INT8 damages most in float until it passes.",
)
@click.option(
    "--compare-speed/--no-compare-speed",
    default=None,
    help="INT8: time fp32 and INT8 ONNX on this CPU at the MAX batch, at most 64 (default on).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the model's dataset is.")
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Output directory.")
def export(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """Export a model file to ONNX, INT8 ONNX, FP16 ONNX or a TensorRT engine, and validate it.

    Every export is checked against PyTorch on real test images (output error within the
    precision's tolerance, top-1 agreement, accuracy change, and for pruned models the exported
    weight count). Writes the file(s) and DIR/export.json.
    """
    from compress.exporters.base import ExportConfig
    from compress.verbs import VERBS

    overrides = {
        "model": model,
        "format": kw.pop("fmt"),
        "precision": kw.pop("precision"),
        "batch": kw.pop("batch"),
        "opset": kw.pop("opset"),
        "calib_images": kw.pop("calib_images"),
        "calib_method": kw.pop("calib_method"),
        "activation_type": kw.pop("activation_type"),
        "float_first_last": kw.pop("float_first_last"),
        "compare_speed": kw.pop("compare_speed"),
        "float_depthwise": kw.pop("float_depthwise"),
        "auto_precision": kw.pop("auto_precision"),
        "data_dir": kw.pop("data_dir"),
        "output": kw.pop("output"),
    }
    config = resolve_config(ExportConfig, config_path, overrides, assignments)
    result = VERBS.get("export")(config, log=echo)
    first = next(iter(result["formats"].values()))
    echo(f"next: compress profile {first['path']}")
