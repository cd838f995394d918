"""``compress profile``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config


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
@click.option("--runtime", help="torch, onnxruntime or tensorrt (default: from the file suffix).")
@click.option("--target", help="local (default) or ssh://user@host[:port].")
@click.option("--batch", "batches", help="Batch sizes to sweep, e.g. 1,8,64 (default 1,64).")
@click.option("--warmup", type=int, help="Untimed calls per batch size (default 10).")
@click.option("--iters", type=int, help="Timed calls per batch size (default 50).")
@click.option(
    "--duration",
    type=float,
    help="And time each batch size for at least this many seconds (default 1).",
)
@click.option(
    "--eval-images",
    type=int,
    help="Real test images for the accuracy check (default 1000; 0 skips).",
)
@click.option("--precision", help="tensorrt built from ONNX/model: fp32, fp16 (default) or int8.")
@click.option("--threads", type=int, help="CPU threads for onnxruntime / torch.")
@click.option(
    "--providers",
    help="onnxruntime execution providers, e.g. CUDAExecutionProvider,CPUExecutionProvider.",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    default=None,
    help="torch runtime: torch.compile the model.",
)
@click.option(
    "--ssh-config", type=click.Path(dir_okay=False), help="Extra ssh config file for ssh targets."
)
@click.option("--remote-python", help="Python interpreter on the device (default python3).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the model's dataset is.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write the result as JSON."
)
def profile(model: str, config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Measure a model where it runs: latency, throughput, accuracy, memory, machine.

    Reports p50/p90/p99 latency and throughput per batch size, top-1 on real test images, size,
    peak memory, and the machine (on Jetson: L4T, nvpmodel, clocks, tegrastats power).

    MODEL is a .safetensors file (torch, or exported for onnxruntime/tensorrt on the fly), an
    .onnx export, or a TensorRT .plan. With --target ssh://user@host the model, a small
    evaluation set and one standalone agent script are copied to the device and run there.
    """
    from compress.deploy.profiler import ProfileSettings, profile_model, results_table

    providers = kw.pop("providers")
    overrides = {
        "runtime": kw.pop("runtime"),
        "target": kw.pop("target"),
        "batches": int_list(kw.pop("batches")),
        "warmup": kw.pop("warmup"),
        "iters": kw.pop("iters"),
        "duration": kw.pop("duration"),
        "eval_images": kw.pop("eval_images"),
        "precision": kw.pop("precision"),
        "threads": kw.pop("threads"),
        "providers": [p.strip() for p in providers.split(",")] if providers else None,
        "compile": kw.pop("compile_"),
        "ssh_config": kw.pop("ssh_config"),
        "remote_python": kw.pop("remote_python"),
        "data_dir": kw.pop("data_dir"),
        "json": kw.pop("json_path"),
    }
    settings = resolve_config(ProfileSettings, config_path, overrides, assignments)
    result = profile_model(model, settings, log=echo)
    echo(results_table(result))
    if settings.json:
        echo(f"wrote {settings.json}")
