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
    echo(
        "also: wrn_{depth}_{width} (any), torchvision.<any torchvision classifier>, timm.<any timm "
        "model> (extra: timm), and compress.models entry-point plugins"
    )


@click.group("datasets", invoke_without_command=True)
@click.pass_context
def datasets(ctx: click.Context) -> None:
    """List the registered datasets and where each one comes from (`datasets stats DIR`: mean/std)."""
    if ctx.invoked_subcommand is not None:
        return
    from compress.data import DATASETS

    for name in DATASETS.names():
        info = DATASETS.info(name)
        echo(f"{name:<15} {info.get('size', ''):<6} {info.get('summary', '')}")


@datasets.command("stats")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--image-size", type=int, help="Resize as training would (default: the images' own size)."
)
@click.option("--limit", type=int, help="Read at most N training images (a class-balanced subset).")
def stats(directory: str, image_size: int | None, limit: int | None) -> None:
    """Per-channel mean and std (0–1 scale) of an image folder's train/ split.

    Prints them as --set values for data.mean and data.std, which are then recorded in every
    model file trained on the folder.
    """
    from compress.data.stats import folder_stats

    result = folder_stats(directory, image_size=image_size, limit=limit)
    mean = ",".join(f"{v:.4f}" for v in result["mean"])
    std = ",".join(f"{v:.4f}" for v in result["std"])
    echo(f"{directory}: {result['images']:,} training images, {result['channels']} channels")
    echo(f"mean {mean}")
    echo(f"std  {std}")
    echo(f"use: --set data.mean=[{mean}] --set data.std=[{std}]")


@click.command("methods")
@click.argument("name", required=False)
def methods(name: str | None) -> None:
    """List the distillation methods; with NAME, that method's settings and their defaults."""
    from compress.config import to_dict
    from compress.distill.methods import METHODS

    if name:
        spec = METHODS.get(name)
        echo(f"{name}: {spec.summary}")
        kind = (
            "online (no teacher)"
            if spec.online
            else ("teacher" if spec.needs_teacher else "no teacher")
        )
        echo(f"needs: {kind}; presets: {', '.join(sorted(spec.presets)) or 'none'}")
        echo("settings (method_args), with defaults:")
        for key, value in to_dict(spec.settings_cls()).items():
            echo(f"  {key}: {value}")
        return
    for method in METHODS.names():
        spec = METHODS.get(method)
        kind = (
            "online (no teacher)"
            if spec.online
            else ("teacher" if spec.needs_teacher else "no teacher")
        )
        presets = f"  presets: {', '.join(sorted(spec.presets))}" if spec.presets else ""
        echo(f"{method:<7} {kind:<20} {spec.summary}{presets}")
