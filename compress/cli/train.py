"""``compress train``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import echo, resolve_config, training_options, training_overrides


@click.command("train")
@training_options
@click.option("--label-smoothing", type=float, help="Cross-entropy label smoothing.")
def train(config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Train a teacher (or a no-KD baseline) from scratch.

    Writes DIR/model.safetensors (best epoch), last.safetensors, state.pt, metrics.jsonl,
    config.yaml and summary.json ("top1" = best test top-1 in 0–1, "top1_last").
    """
    from compress.train import TrainConfig
    from compress.verbs import VERBS

    overrides = training_overrides(kw)
    overrides["label_smoothing"] = kw.pop("label_smoothing", None)
    config = resolve_config(TrainConfig, config_path, overrides, assignments)
    VERBS.get("train")(config, log=echo)
