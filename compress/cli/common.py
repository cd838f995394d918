"""Options and helpers shared by the verbs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from compress.config import build, load_yaml, merge, parse_assignments

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """``--config FILE`` and ``--set KEY=VALUE`` (repeatable)."""
    func = click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override any config key, e.g. --set optim.lr=0.1 --set data.batch_size=128.",
    )(func)
    return click.option(
        "--config", "-c", "config_path", type=click.Path(dir_okay=False), help="YAML config file."
    )(func)


def training_options(func: F) -> F:
    """The flags every training verb accepts (README.md lists each verb's flags)."""
    options = [
        click.option("--model", help="Architecture name (see `compress models`)."),
        click.option("--dataset", help="Dataset name (see `compress datasets`)."),
        click.option(
            "--data-dir", type=click.Path(file_okay=False), help="Where the dataset files are."
        ),
        click.option(
            "--download",
            is_flag=True,
            default=None,
            help="Allow torchvision to download the dataset.",
        ),
        click.option(
            "--image-size",
            type=int,
            help="Image side for imagefolder data (default 224; a teacher's recorded size in distill).",
        ),
        click.option("--epochs", type=int, help="Number of epochs."),
        click.option("--batch-size", type=int, help="Training batch size."),
        click.option("--lr", type=float, help="Base learning rate."),
        click.option("--seed", type=int, help="Random seed."),
        click.option("--device", help="auto (default), cpu, cuda or cuda:N."),
        click.option("--output", "-o", type=click.Path(file_okay=False), help="Run directory."),
        click.option("--resume", is_flag=True, default=None, help="Continue the run in --output."),
        click.option(
            "--lr-scale",
            type=click.Choice(["none", "linear"]),
            help="Under torchrun: linear multiplies the LR by the number of processes.",
        ),
        click.option(
            "--sync-bn", is_flag=True, default=None, help="Under torchrun on GPUs: SyncBatchNorm."
        ),
        click.option(
            "--logger",
            "loggers",
            multiple=True,
            help="Training log besides metrics.jsonl: csv (always on), tensorboard, wandb; repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return config_options(func)


def training_overrides(kw: dict[str, Any]) -> dict[str, Any]:
    """Map the training flags onto dotted config keys (``None`` = flag not given)."""
    loggers = list(kw.pop("loggers", ()) or ())
    return {
        "model": kw.pop("model", None),
        "data.name": kw.pop("dataset", None),
        "data.data_dir": kw.pop("data_dir", None),
        "data.download": kw.pop("download", None),
        "data.image_size": kw.pop("image_size", None),
        "epochs": kw.pop("epochs", None),
        "data.batch_size": kw.pop("batch_size", None),
        "optim.lr": kw.pop("lr", None),
        "seed": kw.pop("seed", None),
        "device": kw.pop("device", None),
        "output": kw.pop("output", None),
        "resume": kw.pop("resume", None),
        "loggers": ["csv", *loggers] if loggers else None,
        "lr_scale": kw.pop("lr_scale", None),
        "sync_bn": kw.pop("sync_bn", None),
    }


def resolve_config(
    cls: type[T],
    config_path: str | None,
    overrides: dict[str, Any],
    assignments: tuple[str, ...] = (),
) -> T:
    """Build `cls` from the YAML file, then the flags, then ``--set`` (CLI > file > defaults).

    ``--resume --output DIR`` without ``--config`` starts from the ``DIR/config.yaml`` the run
    was started with, so a resume needs no other flag.
    """
    base = load_yaml(config_path) if config_path else {}
    output = overrides.get("output")
    if not config_path and overrides.get("resume") and output:
        saved = Path(output) / "config.yaml"
        if saved.is_file():
            base = load_yaml(saved)
            config_path = str(saved)
    merged = merge(merge(base, overrides), parse_assignments(assignments))
    return build(cls, merged, where=config_path or "flags")


def echo(message: str = "") -> None:
    """Print a line to stdout."""
    click.echo(message)


def echo_table(text: str) -> None:
    """Print Markdown: rendered by rich on a terminal, as plain Markdown text elsewhere (files, pipes)."""
    import sys

    if not sys.stdout.isatty():
        click.echo(text)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
