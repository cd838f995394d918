"""``compress prune``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.prune.config import PruneConfig

FLAGS = (
    Flag("--ratio", "prune.ratio", "Fraction of channels removed per layer, in (0, 1)."),
    Flag("--target-macs", "target_macs", "Instead of --ratio: keep this fraction of the MACs."),
    Flag("--target-params", "target_params", "Instead of --ratio: keep this fraction of the parameters."),
    Flag("--target-latency", "target_latency", "Instead of --ratio: a latency budget such as 2ms, or 60% of the unpruned model's, measured on --target with --runtime."),
    Flag("--latency-batch", "budget.batch", "Batch size of the latency budget."),
    Flag("--runtime", "budget.runtime", "Runtime of the latency budget."),
    Flag("--target", "budget.target", "Where the latency budget is measured: local, ssh://user@host or subprocess://."),
    Flag("--importance", "prune.importance", "l1, l2, taylor, bn_scale, lamp or random."),
    Flag("--global", "prune.global_pruning", "Rank channels across layers."),
    Flag("--round-to", "prune.round_to", "Keep channel counts multiples of N."),
    Flag("--steps", "prune.steps", "Prune in N steps (fine-tune between them with --step-epochs)."),
    Flag("--step-epochs", "step_epochs", "Fine-tuning epochs between pruning steps."),
    Flag("--ignore", "prune.ignore", "Module name never pruned (repeatable); the classifier never is.", multiple=True),
    Flag("--bn-recalibration", "bn_recalibration", "Batches of training images to re-estimate BatchNorm statistics on after pruning (0 = off)."),
    Flag("--finetune-epochs", "finetune_epochs", "Fine-tuning epochs after pruning."),
    Flag("--teacher", "teacher", "Fine-tune by distillation from this model file.", kind="file"),
    Flag("--method", "method", "Fine-tuning method (kd with --teacher, else none)."),
    Flag("--preset", "preset", "Named method settings, e.g. faithful."),
    Flag("--dataset", "data.name", "Dataset (the model's if unset)."),
    Flag("--data-dir", "data.data_dir", "Where the dataset files are.", kind="dir"),
    Flag("--batch-size", "data.batch_size", "Fine-tuning batch size."),
    Flag("--lr", "optim.lr", "Fine-tuning learning rate (cosine)."),
    Flag("--seed", "seed", "Random seed."),
    Flag("--device", "device", "auto, cpu, cuda or cuda:N."),
    Flag("--no-latency", "latency", "Skip the CPU latency measurements.", constant=False, show_default=False),
    Flag("--output", "output", "Run directory.", short="-o", kind="dir"),
    Flag("--resume", "resume", "Continue an interrupted fine-tuning."),
)  # fmt: skip


@click.command("prune")
@click.argument("model", type=click.Path(), required=False)
@config_options
@options(FLAGS, PruneConfig)
def prune(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """Prune a trained model's channels (torch-pruning), optionally fine-tune it with KD.

    Prints and saves a before/after table: parameters, MACs, file size, test accuracy, and the
    measured latency in torch and onnxruntime on the CPU at batch 1 and 64. Writes
    DIR/model.safetensors (it reloads anywhere with compress.load_model) and DIR/summary.json.
    """
    from compress.errors import CompressError
    from compress.verbs import VERBS

    given = overrides(FLAGS, kw)
    targets = [k for k in ("target_macs", "target_params", "target_latency") if k in given]
    ratio_given = "prune.ratio" in given or any(
        a.split("=", 1)[0].strip() == "prune.ratio" for a in assignments
    )
    if config_path and not ratio_given:
        from compress.config import load_yaml

        section = load_yaml(config_path).get("prune")
        ratio_given = isinstance(section, dict) and "ratio" in section
    if ratio_given and targets:
        raise CompressError(
            f"--ratio and --{targets[0].replace('_', '-')} both choose how much to prune; give one"
        )
    config = resolve_config(PruneConfig, config_path, {"model": model, **given}, assignments)
    VERBS.get("prune")(config, log=echo)
