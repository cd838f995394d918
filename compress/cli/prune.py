"""``compress prune``."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.common import config_options, echo, resolve_config


@click.command("prune")
@click.argument("model", type=click.Path(), required=False)
@config_options
@click.option(
    "--ratio", type=float, help="Fraction of channels removed per layer, in (0, 1); default 0.5."
)
@click.option(
    "--target-macs", type=float, help="Instead of --ratio: keep this fraction of the MACs."
)
@click.option(
    "--target-params", type=float, help="Instead of --ratio: keep this fraction of the parameters."
)
@click.option(
    "--target-latency",
    help="Instead of --ratio: a latency budget such as 2ms, or 60% of the unpruned model's, measured on --target with --runtime.",
)
@click.option("--latency-batch", type=int, help="Batch size of the latency budget (default 1).")
@click.option(
    "--runtime", help="Runtime of the latency budget: onnxruntime (default), torch, tensorrt."
)
@click.option(
    "--target", help="Where the latency budget is measured: local (default) or ssh://user@host."
)
@click.option("--importance", help="l1 (default), l2, taylor, bn_scale, lamp or random.")
@click.option(
    "--global", "global_pruning", is_flag=True, default=None, help="Rank channels across layers."
)
@click.option("--round-to", type=int, help="Keep channel counts multiples of N (default 8).")
@click.option(
    "--steps", type=int, help="Prune in N steps (fine-tune between them with --step-epochs)."
)
@click.option("--step-epochs", type=int, help="Fine-tuning epochs between pruning steps.")
@click.option(
    "--ignore",
    multiple=True,
    help="Module name never pruned (repeatable); the classifier never is.",
)
@click.option(
    "--bn-recalibration",
    type=int,
    help="Batches of training images to re-estimate BatchNorm statistics on after pruning "
    "(default 16; 0 = off).",
)
@click.option("--finetune-epochs", type=int, help="Fine-tuning epochs after pruning (default 0).")
@click.option(
    "--teacher", type=click.Path(), help="Fine-tune by distillation from this model file."
)
@click.option("--method", help="Fine-tuning method (default kd with --teacher, else none).")
@click.option("--preset", help="Named method settings, e.g. faithful.")
@click.option("--dataset", help="Dataset (default: the model's).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the dataset files are.")
@click.option("--batch-size", type=int, help="Fine-tuning batch size.")
@click.option("--lr", type=float, help="Fine-tuning learning rate (default 0.01, cosine).")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--no-latency", is_flag=True, default=False, help="Skip the CPU latency measurements."
)
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, default=None, help="Continue an interrupted fine-tuning.")
def prune(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: Any
) -> None:
    """Prune a trained model's channels (torch-pruning), optionally fine-tune it with KD.

    Prints and saves a before/after table: parameters, MACs, file size, test accuracy, and the
    measured latency in torch and onnxruntime on the CPU at batch 1 and 64. Writes
    DIR/model.safetensors (it reloads anywhere with compress.load_model) and DIR/summary.json.
    """
    from compress.prune.config import PruneConfig
    from compress.verbs import VERBS

    overrides = {
        "model": model,
        "prune.ratio": kw.pop("ratio"),
        "prune.importance": kw.pop("importance"),
        "prune.global_pruning": kw.pop("global_pruning"),
        "prune.round_to": kw.pop("round_to"),
        "prune.steps": kw.pop("steps"),
        "prune.ignore": list(kw.pop("ignore")) or None,
        "target_macs": kw.pop("target_macs"),
        "target_params": kw.pop("target_params"),
        "target_latency": kw.pop("target_latency"),
        "budget.batch": kw.pop("latency_batch"),
        "budget.runtime": kw.pop("runtime"),
        "budget.target": kw.pop("target"),
        "step_epochs": kw.pop("step_epochs"),
        "bn_recalibration": kw.pop("bn_recalibration"),
        "finetune_epochs": kw.pop("finetune_epochs"),
        "teacher": kw.pop("teacher"),
        "method": kw.pop("method"),
        "preset": kw.pop("preset"),
        "data.name": kw.pop("dataset"),
        "data.data_dir": kw.pop("data_dir"),
        "data.batch_size": kw.pop("batch_size"),
        "optim.lr": kw.pop("lr"),
        "seed": kw.pop("seed"),
        "device": kw.pop("device"),
        "latency": False if kw.pop("no_latency") else None,
        "output": kw.pop("output"),
        "resume": kw.pop("resume"),
    }
    targets = [k for k in ("target_macs", "target_params", "target_latency") if overrides[k]]
    ratio_given = overrides["prune.ratio"] is not None or any(
        a.split("=", 1)[0].strip() == "prune.ratio" for a in assignments
    )
    if config_path and not ratio_given:
        from compress.config import load_yaml

        section = load_yaml(config_path).get("prune")
        ratio_given = isinstance(section, dict) and "ratio" in section
    if ratio_given and targets:
        from compress.errors import CompressError

        raise CompressError(
            f"--ratio and --{targets[0].replace('_', '-')} both choose how much to prune; give one"
        )
    config = resolve_config(PruneConfig, config_path, overrides, assignments)
    VERBS.get("prune")(config, log=echo)
