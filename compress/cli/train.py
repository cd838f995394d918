"""``compress train``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import (
    TRAINING_FLAGS,
    echo,
    resolve_config,
    training_options,
    training_overrides,
)
from compress.cli.flags import Flag
from compress.train import TrainConfig

FLAGS = (*TRAINING_FLAGS, Flag("--label-smoothing", "label_smoothing", "Label smoothing."))


@click.command("train")
@training_options(FLAGS, TrainConfig)
def train(config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Train a teacher (or a no-KD baseline) from scratch.

    Writes DIR/model.safetensors (best epoch), last.safetensors, state.pt, metrics.jsonl,
    config.yaml and summary.json ("top1" = best test top-1 in 0–1, "top1_last").
    """
    from compress.verbs import VERBS

    config = resolve_config(TrainConfig, config_path, training_overrides(FLAGS, kw), assignments)
    VERBS.get("train")(config, log=echo)
