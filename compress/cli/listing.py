"""``compress models`` and ``compress datasets``."""

from __future__ import annotations

import click

from compress.cli.common import echo


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--params", is_flag=True, help="Also count parameters (at 10 classes, 3 channels).")
def models(pattern: str | None, params: bool) -> None:
    """List the registered architectures (optionally matching PATTERN, e.g. 'resnet*')."""
    from compress.models import count_params, create_model, list_models, model_info

    names = list_models(pattern)
    for name in names:
        info = model_info(name)
        line = f"{name:<22} {info.get('family', ''):<12} {info.get('source', '')}"
        if params:
            line += f"  {count_params(create_model(name)) / 1e6:8.3f} M"
        echo(line)
    echo("also: wrn_{depth}_{width} (any), torchvision.<any torchvision classifier>")


@click.command("datasets")
def datasets() -> None:
    """List the registered datasets and where each one comes from."""
    from compress.data import DATASETS

    for name in DATASETS.names():
        info = DATASETS.info(name)
        echo(f"{name:<15} {info.get('size', ''):<6} {info.get('summary', '')}")


@click.command("methods")
def methods() -> None:
    """List the distillation methods, their presets and whether they need a teacher."""
    from compress.distill.api import METHODS

    for name in METHODS.names():
        spec = METHODS.get(name)
        kind = (
            "online (no teacher)"
            if spec.online
            else ("teacher" if spec.needs_teacher else "no teacher")
        )
        presets = f"  presets: {', '.join(sorted(spec.presets))}" if spec.presets else ""
        echo(f"{name:<6} {kind:<20} {spec.summary}{presets}")
