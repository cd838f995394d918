"""Options and helpers shared by the verbs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from compress.cli.flags import Flag, options, overrides
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


#: The flags every training verb accepts (README.md lists each verb's flags).
TRAINING_FLAGS = (
    Flag("--model", "model", "Architecture name (see `compress models`)."),
    Flag("--dataset", "data.name", "Dataset name (see `compress datasets`)."),
    Flag("--data-dir", "data.data_dir", "Where the dataset files are.", kind="dir"),
    Flag("--download", "data.download", "Allow torchvision to download the dataset."),
    Flag(
        "--image-size",
        "data.image_size",
        "Image side for imagefolder data (224 if unset; a teacher's recorded size in distill).",
    ),
    Flag("--epochs", "epochs", "Number of epochs (passes over the training set)."),
    Flag("--batch-size", "data.batch_size", "Training batch size."),
    Flag("--lr", "optim.lr", "Base learning rate."),
    Flag("--seed", "seed", "Random seed."),
    Flag("--device", "device", "auto (CUDA if present), cpu, cuda or cuda:N."),
    Flag("--output", "output", "Run directory.", short="-o", kind="dir"),
    Flag("--resume", "resume", "Continue the run in --output."),
    Flag("--lr-scale", "lr_scale", "Under torchrun: linear multiplies the LR by the processes."),
    Flag("--sync-bn", "sync_bn", "Under torchrun on GPUs: SyncBatchNorm."),
    Flag(
        "--logger",
        "loggers",
        "Training log besides metrics.jsonl and results.csv: tensorboard, wandb; repeatable.",
        multiple=True,
        show_default=False,
    ),
)


def training_options(flags: tuple[Flag, ...], cls: type) -> Callable[[F], F]:
    """``--config``, ``--set`` and the verb's flags, typed and documented from `cls`."""

    def deco(func: F) -> F:
        return config_options(options(flags, cls)(func))

    return deco


def training_overrides(flags: tuple[Flag, ...], kw: dict[str, Any]) -> dict[str, Any]:
    """The dotted-key overrides of the flags given; ``--logger`` keeps the CSV log on."""
    out = overrides(flags, kw)
    if "loggers" in out:
        out["loggers"] = ["csv", *out["loggers"]]
    return out


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


def markdown_blocks(message: str) -> list[tuple[bool, str]]:
    """Split `message` into ``(is_table, text)`` runs of plain lines and Markdown table lines."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in message.split("\n"):
        table = line.startswith("|")
        if blocks and blocks[-1][0] == table:
            blocks[-1][1].append(line)
        else:
            blocks.append((table, [line]))
    return [(t, "\n".join(lines)) for t, lines in blocks]


def echo(message: str = "") -> None:
    """Print to stdout; on a terminal, the Markdown tables in `message` render as `echo_table`'s."""
    import sys

    if ("\n|" not in message and not message.startswith("|")) or not sys.stdout.isatty():
        click.echo(message)
        return
    for table, text in markdown_blocks(message):
        if table:
            echo_table(text)
        else:
            click.echo(text)


def echo_table(text: str) -> None:
    """Print Markdown: rendered by rich on a terminal, as plain Markdown text elsewhere (files, pipes)."""
    import sys

    if not sys.stdout.isatty():
        click.echo(text)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
