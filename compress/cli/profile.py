"""``compress profile``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, echo_table, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.deploy.profiler import ProfileSettings

FLAGS = (
    Flag("--runtime", "runtime", "torch, onnxruntime or tensorrt (from the file suffix if unset)."),
    Flag("--target", "target", "local, ssh://user@host[:port] or subprocess://[PYTHON]."),
    Flag("--batch", "batches", "Batch sizes to sweep, e.g. 1,8,64.", kind="ints"),
    Flag("--warmup", "warmup", "Untimed calls per batch size."),
    Flag("--iters", "iters", "Timed calls per batch size (at least)."),
    Flag("--duration", "duration", "And time each batch size for at least this many seconds."),
    Flag("--eval-images", "eval_images", "Real test images for the accuracy check (0 skips)."),
    Flag("--precision", "precision", "tensorrt built from ONNX/model: fp32, fp16 or int8."),
    Flag("--threads", "threads", "CPU threads for onnxruntime / torch."),
    Flag("--providers", "providers", "onnxruntime execution providers, e.g. CUDAExecutionProvider,CPUExecutionProvider.", kind="strs"),
    Flag("--compile", "compile", "torch runtime: torch.compile the model."),
    Flag("--ssh-config", "ssh_config", "Extra ssh config file for ssh targets.", kind="file"),
    Flag("--remote-python", "remote_python", "Python interpreter on the device."),
    Flag("--data-dir", "data_dir", "Where the model's dataset is.", kind="dir"),
    Flag("--json", "json", "Write the result as JSON (never over a file compress did not write).", kind="file"),
)  # fmt: skip


def int_list(text: str | None) -> list[int] | None:
    """``"1,8,64"`` → [1, 8, 64]."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{text}'") from None


@click.command("profile")
@click.argument("model", type=click.Path())
@config_options
@options(FLAGS, ProfileSettings)
def profile(model: str, config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Measure a model where it runs: latency, throughput, accuracy, memory, machine.

    Reports p50/p90/p99 latency and throughput per batch size, top-1 on real test images, size,
    peak memory, and the machine (on Jetson: L4T, nvpmodel, clocks, tegrastats power).

    MODEL is a .safetensors file (torch, or exported for onnxruntime/tensorrt on the fly), an
    .onnx export, or a TensorRT .plan. With --target ssh://user@host the model, a small
    evaluation set and one standalone agent script are copied to the device and run there.
    The data must fit the model (classes, channels, size), as for `compress eval`.
    """
    from compress.deploy.profiler import profile_model, results_table

    settings = resolve_config(ProfileSettings, config_path, overrides(FLAGS, kw), assignments)
    result = profile_model(model, settings, log=echo)
    echo_table(results_table(result))
    if settings.json:
        echo(f"wrote {settings.json}")
