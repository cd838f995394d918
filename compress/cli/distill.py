"""``compress distill``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import echo, resolve_config, training_options, training_overrides


@click.command("distill")
@training_options
@click.option("--teacher", type=click.Path(), help="Teacher model file (from `compress train`).")
@click.option("--student", help="Student architecture (same as --model).")
@click.option("--method", help="Distillation method (see `compress methods`); default r2kd.")
@click.option(
    "--preset", help="Named method settings, e.g. 'faithful' (R2KD as the authors released it)."
)
@click.option(
    "--seeds", type=int, help="Train N students (seeds SEED..SEED+N-1) and report mean ± std."
)
def distill(config_path: str | None, assignments: tuple[str, ...], **kw: Any) -> None:
    """Distil a student from a teacher (R2KD by default).

    Writes DIR/model.safetensors, last.safetensors, state.pt, metrics.jsonl, config.yaml and
    summary.json ("top1", "top1_last"; with --seeds N > 1 also "top1_mean", "top1_std" and one
    seed<N>/ directory per seed). The student's file records its teacher (path and SHA-256).
    """
    from compress.distill.config import DistillConfig
    from compress.verbs import VERBS

    student = kw.pop("student", None)
    model = kw.get("model")
    if student and model and student != model:
        raise click.UsageError(
            f"--student {student} and --model {model} disagree; give one of them"
        )
    overrides = training_overrides(kw)
    overrides["student"] = student or overrides.pop("model")
    overrides.pop("model", None)
    for key in ("teacher", "method", "preset", "seeds"):
        overrides[key] = kw.pop(key, None)
    config = resolve_config(DistillConfig, config_path, overrides, assignments)
    VERBS.get("distill")(config, log=echo)
