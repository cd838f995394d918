"""``compress benchmark``."""

from __future__ import annotations

import sys
from typing import Any

import click

from compress.cli.common import config_options, echo, echo_table, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.deploy.benchmark import DEFAULT_FORMATS, BenchmarkConfig
from compress.exporters.formats import format_names

FLAGS = (
    Flag("--formats", "formats", f"Comma-separated: {', '.join(format_names())} (default: {', '.join(DEFAULT_FORMATS)}, those this machine can run).", kind="strs", show_default=False),
    Flag("--target", "target", "local, ssh://user@host[:port] or subprocess://[PYTHON]."),
    Flag("--batch", "batches", "Batch sizes, e.g. 1,64: latency at the first, throughput at the last.", kind="ints"),
    Flag("--min-accuracy", "min_accuracy", "Exit non-zero if a format scores below this top-1 (0–1 or %)."),
    Flag("--iters", "profile.iters", "Timed calls per batch size, at least."),
    Flag("--duration", "profile.duration", "And time each batch size for at least this many seconds, so p99 means something."),
    Flag("--threads", "profile.threads", "CPU threads of the CPU runtimes (torch, onnxruntime)."),
    Flag("--eval-images", "profile.eval_images", "Real test images for accuracy."),
    Flag("--ssh-config", "profile.ssh_config", "Extra ssh config file for ssh targets.", kind="file"),
    Flag("--remote-python", "profile.remote_python", "Python interpreter on the device."),
    Flag("--data-dir", "profile.data_dir", "Where the models' dataset is.", kind="dir", also=("export.data_dir",)),
    Flag("--output", "output", "Output directory.", short="-o", kind="dir"),
)  # fmt: skip


@click.command("benchmark")
@click.argument("models", nargs=-1, type=click.Path())
@config_options
@options(FLAGS, BenchmarkConfig)
def benchmark(
    models: tuple[str, ...], config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """One table over formats: status, size, top-1, latency percentiles, throughput.

    Each format is exported, validated against PyTorch and profiled on the target; formats that
    cannot run here get their reason in the status column. Writes DIR/benchmark.{md,csv,json}
    and DIR/pareto.png (accuracy vs latency; several models share one plot).
    """
    from compress.verbs import VERBS

    given = {"models": list(models) or None, **overrides(FLAGS, kw)}
    config = resolve_config(BenchmarkConfig, config_path, given, assignments)
    result = VERBS.get("benchmark")(config, log=echo)
    echo("")
    echo_table(result["table"])
    echo(f"\nwrote {result['output']}/benchmark.md, benchmark.csv, benchmark.json, pareto.png")
    if result["gate"]:
        click.echo("accuracy gate failed: " + "; ".join(result["gate"]), err=True)
        sys.exit(1)
