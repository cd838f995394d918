"""``compress benchmark``."""

from __future__ import annotations

import sys
from typing import Any

import click

from compress.cli.common import config_options, echo, echo_table, resolve_config
from compress.cli.profile import int_list


@click.command("benchmark")
@click.argument("models", nargs=-1, type=click.Path())
@config_options
@click.option(
    "--formats",
    help="Comma-separated: torch, onnx, onnx-int8, onnx-fp16, trt-fp32, trt-fp16, trt-int8 "
    "(default: torch, onnx, onnx-int8, trt-fp16, trt-int8, those this machine can run).",
)
@click.option("--target", help="local (default) or ssh://user@host[:port].")
@click.option(
    "--batch",
    "batches",
    help="Batch sizes, e.g. 1,64: latency at the first, throughput at the last.",
)
@click.option(
    "--min-accuracy",
    type=float,
    help="Exit non-zero if a format scores below this top-1 (0–1 or %).",
)
@click.option("--iters", type=int, help="Timed calls per batch size, at least (default 30).")
@click.option(
    "--duration",
    type=float,
    help="And time each batch size for at least this many seconds (default 0.5), so p99 means something.",
)
@click.option("--threads", type=int, help="CPU threads of the CPU runtimes (torch, onnxruntime).")
@click.option("--eval-images", type=int, help="Real test images for accuracy (default 1000).")
@click.option(
    "--ssh-config", type=click.Path(dir_okay=False), help="Extra ssh config file for ssh targets."
)
@click.option("--remote-python", help="Python interpreter on the device (default python3).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the models' dataset is.")
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Output directory.")
def benchmark(
    models: tuple[str, ...], config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """One table over formats: status, size, top-1, latency percentiles, throughput.

    Each format is exported, validated against PyTorch and profiled on the target; formats that
    cannot run here get their reason in the status column. Writes DIR/benchmark.{md,csv,json}
    and DIR/pareto.png (accuracy vs latency; several models share one plot).
    """
    from compress.deploy.benchmark import BenchmarkConfig
    from compress.verbs import VERBS

    formats = kw.pop("formats")
    data_dir = kw.pop("data_dir")
    overrides = {
        "models": list(models) or None,
        "formats": [f.strip() for f in formats.split(",") if f.strip()] if formats else None,
        "target": kw.pop("target"),
        "batches": int_list(kw.pop("batches")),
        "min_accuracy": kw.pop("min_accuracy"),
        "profile.iters": kw.pop("iters"),
        "profile.duration": kw.pop("duration"),
        "profile.threads": kw.pop("threads"),
        "profile.eval_images": kw.pop("eval_images"),
        "profile.ssh_config": kw.pop("ssh_config"),
        "profile.remote_python": kw.pop("remote_python"),
        "profile.data_dir": data_dir,
        "export.data_dir": data_dir,
        "output": kw.pop("output"),
    }
    config = resolve_config(BenchmarkConfig, config_path, overrides, assignments)
    result = VERBS.get("benchmark")(config, log=echo)
    echo("")
    echo_table(result["table"])
    echo(f"\nwrote {result['output']}/benchmark.md, benchmark.csv, benchmark.json, pareto.png")
    if result["gate"]:
        click.echo("accuracy gate failed: " + "; ".join(result["gate"]), err=True)
        sys.exit(1)
