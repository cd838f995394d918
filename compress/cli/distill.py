"""``compress distill``."""

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
from compress.distill.config import DistillConfig

FLAGS = (
    *(f if f.spelling != "--model" else Flag("--model", "student", "Same as --student.")
      for f in TRAINING_FLAGS),
    Flag("--teacher", "teacher", "Teacher model file (from `compress train`).", kind="file"),
    Flag("--student", "student", "Student architecture (see `compress models`)."),
    Flag("--method", "method", "Distillation method (see `compress methods`)."),
    Flag("--preset", "preset", "Named method settings, e.g. 'faithful' (R2KD as released)."),
    Flag("--seeds", "seeds", "Train N students (seeds SEED..SEED+N-1), report mean ± std."),
)  # fmt: skip


@click.command("distill")
@training_options(FLAGS, DistillConfig)
def distill(config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Distil a student from a teacher (R2KD by default).

    Writes DIR/model.safetensors, last.safetensors, state.pt, metrics.jsonl, config.yaml and
    summary.json ("top1", "top1_last"; with --seeds N > 1 also "top1_mean", "top1_std" and one
    seed<N>/ directory per seed). The student's file records its teacher (path and SHA-256).
    """
    from compress.verbs import VERBS

    student, model = kw.get("student"), kw.pop("model", None)
    if student and model and student != model:
        raise click.UsageError(
            f"--student {student} and --model {model} disagree; give one of them"
        )
    if model and not student:
        kw["student"] = model
    config = resolve_config(DistillConfig, config_path, training_overrides(FLAGS, kw), assignments)
    VERBS.get("distill")(config, log=echo)
