"""``compress import``."""

from __future__ import annotations

import click

from compress.cli.common import echo


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(
            f"expects comma-separated numbers, got '{text}'", param_hint=what
        ) from None


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(1 <= v <= 1024 for v in values):
        raise click.BadParameter(
            f"expects H or H,W between 1 and 1024, got '{text}'", param_hint="--image-size"
        )
    return (values[0], values[-1])


@click.command("import")
@click.argument("file", type=click.Path())
@click.option("--arch", required=True, help="Architecture name (see `compress models`).")
@click.option("--num-classes", type=int, required=True, help="Classifier outputs.")
@click.option("--in-channels", type=int, help="Image channels. [default: 3]")
@click.option(
    "--image-size",
    help="H or H,W the model was trained at (default 224 for torchvision/timm, 32 for the zoo).",
)
@click.option(
    "--mean", help="Per-channel normalisation mean, 0–1 scale, e.g. 0.5071,0.4865,0.4409."
)
@click.option("--std", help="Per-channel normalisation std, e.g. 0.2673,0.2564,0.2762.")
@click.option("--dataset", help="Dataset it was trained on (the default for eval, distill, ...).")
@click.option("--classes", help="The class names, comma-separated, in the model's output order.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Record the class names of this image folder (its train/ class folders, sorted).",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), required=True, help="Model file to write."
)
def import_cmd(
    file: str,
    arch: str,
    num_classes: int,
    in_channels: int | None,
    image_size: str | None,
    mean: str | None,
    std: str | None,
    dataset: str | None,
    classes: str | None,
    data_dir: str | None,
    output: str,
) -> None:
    """Bring weights trained elsewhere in as a compress model file.

    FILE is a state dict (torch.save(model.state_dict())), a training checkpoint with the
    weights under model / state_dict / model_state_dict / net (RepDistiller and mdistiller
    checkpoints import into the zoo names unchanged), or a safetensors file. A DataParallel
    'module.' prefix is removed. The file is read with torch.load(weights_only=True): no code
    in it runs. The output records the source file and its SHA-256.
    """
    from compress.errors import CompressError
    from compress.importer import ImportSettings, import_weights

    given_channels = in_channels is not None
    in_channels = in_channels if in_channels is not None else 3
    names = _class_names(classes, data_dir)
    means, stds = _floats(mean, "--mean"), _floats(std, "--std")
    if (means is None) != (stds is None):
        raise CompressError("give --mean and --std together")
    for name, values in (("--mean", means), ("--std", stds)):
        if values is not None and len(values) != in_channels:
            raise CompressError(
                f"{name} has {len(values)} values but the model takes {in_channels}-channel images"
            )
    from compress.data.base import check_normalisation

    try:
        check_normalisation(means, stds, "--")
    except ValueError as exc:
        raise CompressError(str(exc)) from None
    if dataset is not None:
        from compress.data import DATASETS

        DATASETS.get(dataset)  # an unknown name is a one-line error with a suggestion
    settings = ImportSettings(
        source=file,
        arch=arch,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=_size(image_size),
        mean=means,
        std=stds,
        dataset=dataset,
        output=output,
        class_names=names,
        in_channels_given=given_channels,
    )
    facts = import_weights(settings, log=echo)
    echo(f"next: compress info {facts['output']}")


def _class_names(classes: str | None, data_dir: str | None) -> tuple[str, ...] | None:
    """Class names from ``--classes`` or from an image folder's class folders."""
    from pathlib import Path

    from compress.errors import CompressError

    if classes and data_dir:
        raise CompressError("give --classes or --data-dir, not both")
    if classes:
        names = tuple(c.strip() for c in classes.split(",") if c.strip())
        if len(set(names)) != len(names):
            raise CompressError(f"--classes repeats a name: {classes}")
        return names
    if data_dir:
        root = Path(data_dir)
        split = root / "train" if (root / "train").is_dir() else root
        if not split.is_dir():
            raise CompressError(f"--data-dir '{data_dir}' is not a folder of class folders")
        names = tuple(sorted(p.name for p in split.iterdir() if p.is_dir()))
        if not names:
            raise CompressError(f"'{split}' has no class folders to take the names from")
        return names
    return None
