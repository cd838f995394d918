"""``compress prune``: structured pruning, optional KD fine-tuning, and a before/after table.

The table gives parameters, MACs, file size, accuracy and *measured* latency, because fewer MACs
is not the same as faster.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch.nn.functional as F
from torch import nn

from compress.artifacts import (
    atomic_write_json,
    default_output_dir,
    file_ref,
    load_model,
    model_header,
    read_header,
    save_model,
)
from compress.config import config_hash, hashed_dict, write_config
from compress.errors import CompressError
from compress.outputs import run_directory
from compress.prune.config import PruneConfig
from compress.prune.settings import PruneSettings
from compress.prune.structured import (
    append_record,
    check_prunable,
    max_feasible_ratio,
    prune_channels,
    recalibrate_bn,
)

PLAN_FILE = "prune.json"


@dataclass
class _Job:
    """What every step of one ``compress prune`` run shares."""

    config: PruneConfig
    info: Any
    data: Any
    data_settings: Any
    shape: tuple[int, int, int]
    train_loader: Any
    eval_loader: Any
    device: Any
    digest: str
    log: Any
    finetune: Finetuner | None = None


class Finetuner(Protocol):
    """The fine-tune step ``compress prune`` is given (distillation lives above pruning).

    The verbs (`compress.verbs`) pass the distillation fine-tuner, ``DistillFinetuner``.
    """

    def check(self, config: PruneConfig) -> None:
        """Raise a one-line error before any pruning work when fine-tuning cannot run."""

    def __call__(self, model: nn.Module, job: Any, out: Path, epochs: int) -> dict[str, Any]:
        """Fine-tune `model` for `epochs` epochs into `out`; the run's summary."""


def _measure(
    model: nn.Module, shape: tuple[int, int, int], eval_loader: Any, config: PruneConfig
) -> dict[str, Any]:
    from compress.deploy.latency import cpu_latency
    from compress.engine.metrics import model_facts

    device = next(model.parameters()).device
    facts = model_facts(model, shape, eval_loader)
    if config.latency:
        lat = cpu_latency(copy.deepcopy(model).cpu(), shape, repeats=config.latency_repeats)
        facts["latency_ms"] = {rt: {str(b): ms for b, ms in d.items()} for rt, d in lat.items()}
    model.to(device)
    return facts


#: How far (share of the model's own count) the achieved MACs or params may land from a target.
TARGET_SLACK = 0.03


def search_ratio(
    model: nn.Module,
    shape: tuple[int, int, int],
    settings: PruneSettings,
    *,
    target: float,
    metric: str,
) -> tuple[float, float]:
    """The channel ratio whose one-shot pruning keeps about `target` of the model's MACs or params.

    Bisection over the ratio, each trial pruning a copy of the model. With ``round_to`` the kept
    share is a step function of the ratio and not even monotone near 0 (a tiny ratio can round
    a 16-channel layer down to 8), so the bisection's answer is checked, and when it misses the
    target a grid of ratios is tried; the ratio whose share lands closest wins.

    Returns:
        ``(ratio, kept)``: the ratio and the share it keeps.

    Raises:
        CompressError: no ratio lands within `TARGET_SLACK` of the target (the message gives the
            closest share reachable).
    """
    from compress.models import count_params
    from compress.models.stats import count_macs

    def measure(m: nn.Module) -> float:
        return float(count_macs(m, shape) if metric == "macs" else count_params(m))

    base = measure(model)
    seen: dict[float, float] = {}

    def kept(ratio: float) -> float:
        if ratio not in seen:
            trial = copy.deepcopy(model).cpu()
            try:
                prune_channels(trial, shape, replace(settings, ratio=ratio, steps=1))
            except CompressError:  # nothing to remove at this ratio
                seen[ratio] = 1.0
                return 1.0
            seen[ratio] = measure(trial) / base
        return seen[ratio]

    top = settings.max_layer_ratio
    if not settings.global_pruning:
        top = min(top, max_feasible_ratio(model, settings.round_to))
    top = max(top, 1e-3)
    least = kept(top)
    if least > target * 1.05:
        raise CompressError(
            f"this model cannot be pruned to {100 * target:.2f}% of its {metric}: the most it can "
            f"lose (ratio {top:.3f} with round_to {settings.round_to}) keeps {100 * least:.1f}%; "
            "ask for a larger target, or lower --round-to"
        )
    lo, hi = 0.0, top
    for _ in range(12):
        mid = (lo + hi) / 2
        if kept(max(mid, 1e-3)) > target:
            lo = mid
        else:
            hi = mid
    ratio = max(hi, 1e-3)
    if abs(kept(ratio) - target) > TARGET_SLACK:
        for i in range(1, 25):
            kept(top * i / 24)
        ratio = min(seen, key=lambda r: (abs(seen[r] - target), r))
    if abs(seen[ratio] - target) > TARGET_SLACK:
        near = min(seen.values(), key=lambda k: abs(k - target))
        raise CompressError(
            f"no channel ratio keeps {100 * target:.1f}% of this model's {metric} with round_to "
            f"{settings.round_to} (the closest is {100 * near:.1f}%); choose a target near that, "
            "or lower --round-to"
        )
    return ratio, seen[ratio]


def prune(
    config: PruneConfig, *, log: Any = print, finetuner: Finetuner | None = None
) -> dict[str, Any]:
    """Prune ``config.model``; optionally fine-tune it (with `finetuner`); report before/after.

    Writes ``output/model.safetensors`` (its header holds the pruning history, so
    `compress.load_model` rebuilds it anywhere), ``summary.json`` (``params_before``,
    ``params_after``, ``macs_before``, ``macs_after``, top-1 before / after pruning / after
    fine-tuning, latency) and, with fine-tuning, the usual training files.
    """
    from compress.data import build_loaders, load_data_for_model, settings_for_model
    from compress.engine import resolve_device

    if not config.model:
        raise CompressError("give the model file to prune: compress prune MODEL.safetensors")
    header = read_header(config.model)
    if config.finetune_epochs or config.step_epochs:
        if finetuner is None:
            raise CompressError(
                "fine-tuning a pruned model needs a fine-tuner: use `compress prune`, "
                "compress.prune(...) or compress.verbs.run('prune', ...), which pass one"
            )
        finetuner.check(config)
    import torch

    torch.manual_seed(config.seed)  # BatchNorm recalibration's augmented batches: reproducible
    source = load_model(config.model)
    check_prunable(source)
    device = resolve_device(config.device)
    data_settings = settings_for_model(header, config.data)
    data = load_data_for_model(header, config.data)
    info = data.info
    shape = header.input_shape
    stem = Path(config.model).parent.name or "model"
    out = (
        Path(config.output)
        if config.output
        else default_output_dir("prune", f"{stem}_{config.prune.ratio}")
    )
    with run_directory(
        out,
        kind="prune",
        resume=config.resume,
        run_files=("state.pt", "summary.json", PLAN_FILE, "config.yaml"),
    ):
        digest = config_hash(
            {
                "config": hashed_dict(config),
                "model": file_ref(config.model)["sha256"],
                "teacher": file_ref(config.teacher)["sha256"] if config.teacher else None,
            }
        )
        write_config(config, out, digest=digest)
        train_loader, eval_loader = build_loaders(
            data, data_settings, device=device, seed=config.seed
        )
        job = _Job(
            config,
            info,
            data,
            data_settings,
            shape,
            train_loader,
            eval_loader,
            device,
            digest,
            log,
            finetuner,
        )

        resumable = (
            config.resume and (out / PLAN_FILE).exists() and (out / "last.safetensors").exists()
        )
        if resumable:
            from compress.engine.checkpoint import check_resume

            check_resume(out / PLAN_FILE, digest, config)
            plan = json.loads((out / PLAN_FILE).read_text())
            model = load_model(out / "last.safetensors", device=device)
            log(f"resuming the fine-tuning in {out}")
        else:
            model, plan = _prune(source, job, out)
        before, after_prune = plan["before"], plan["after_prune"]

        if config.finetune_epochs > 0:
            tuned = job.finetune(model, job, out, config.finetune_epochs)
            model = load_model(out / "model.safetensors", device=device)
            fine_top1: float | None = tuned["top1"]
        else:
            fine_top1 = None
        # one measurement per figure: without fine-tuning the final model is the pruned one,
        # measured once (a second run of the same timing gave another number for it)
        after = (
            _measure(model, shape, eval_loader, config) if fine_top1 is not None else after_prune
        )
        after = {**after, "file_bytes": (out / "model.safetensors").stat().st_size}
        summary = {
            "model": str(config.model),
            "output_model": str(out / "model.safetensors"),
            "params_before": before["params"],
            "params_after": after["params"],
            "macs_before": before["macs"],
            "macs_after": after["macs"],
            "top1_before": before["top1"],
            "top1_pruned": after_prune["top1"],
            "top1": after["top1"],
            "top1_finetuned": fine_top1,
            "bn_recalibration_images": after_prune.get("bn_recalibration_images", 0),
            "ratio": plan["ratio"],
            "importance": config.prune.importance,
            "method": config.method_name if config.finetune_epochs else None,
            "before": before,
            "after": after,
            "config_hash": digest,
        }
        if plan.get("latency_budget_ms"):
            from compress.prune.budget import measure, noise_ms

            final = measure(model, config.budget, config.data.data_dir, log)
            probes = plan.get("latency_probes") or []
            noise = max(final["p90_ms"] - final["p50_ms"], noise_ms(probes, plan["ratio"]))
            target_ms = plan["latency_budget_ms"]
            met = final["p50_ms"] <= target_ms + noise
            summary["latency_budget"] = {
                "target_ms": target_ms,
                "share": config.target_latency_share,
                "achieved_p50_ms": final["p50_ms"],
                "achieved_p90_ms": final["p90_ms"],
                "noise_ms": noise,
                "met": met,
                "batch": config.budget.batch,
                "runtime": config.budget.runtime,
                "target": config.budget.target,
                "probes": plan.get("latency_probes"),
            }
            log(
                f"latency budget {target_ms:.4g} ms: the final model measures p50 "
                f"{final['p50_ms']:.3f} ms (p90 {final['p90_ms']:.3f}, noise ±{noise:.3f}) on "
                f"{config.budget.target}"
                + (
                    ""
                    if met
                    else " — over the budget by more than the noise; measure on an idle device"
                )
            )
        atomic_write_json(out / "summary.json", summary)
        log("")
        log(report_table(before, after_prune, after, fine_top1 is not None))
    return {**summary, "output": str(out)}


def _prune(source: nn.Module, job: _Job, out: Path) -> tuple[nn.Module, dict[str, Any]]:
    config, shape, eval_loader, log, digest = (
        job.config,
        job.shape,
        job.eval_loader,
        job.log,
        job.digest,
    )
    device = job.device
    before = _measure(source.to(device), shape, eval_loader, config)
    before["file_bytes"] = Path(config.model).stat().st_size
    settings = config.prune
    probes, budget_ms = None, None
    if config.target_macs or config.target_params:
        metric = "macs" if config.target_macs else "params"
        target = config.target_macs or config.target_params
        ratio, share = search_ratio(source, shape, settings, target=target, metric=metric)
        log(
            f"keeping {100 * target:.1f}% of the {metric}: channel ratio {ratio:.3f} keeps "
            f"{100 * share:.1f}%"
        )
        settings = replace(settings, ratio=ratio)
    elif config.target_latency or config.target_latency_share:
        from compress.prune.budget import search_latency_ratio

        ratio, probes, budget_ms = search_latency_ratio(
            source,
            shape,
            settings,
            budget_ms=config.target_latency,
            share=config.target_latency_share,
            budget=config.budget,
            data_dir=config.data.data_dir,
            log=log,
        )
        chosen = [p for p in probes if p["ratio"] == ratio][-1]  # its confirmation
        log(
            f"a {budget_ms:.4g} ms budget (batch {config.budget.batch}, {config.budget.runtime} on "
            f"{config.budget.target}) needs a channel ratio of {ratio:.3f}: p50 {chosen['p50_ms']:.3f} ms, "
            f"{len(probes)} probes"
        )
        settings = replace(settings, ratio=ratio)
    model = copy.deepcopy(source).cpu()
    model.compress_header = model_header(source)
    xb, yb = (t.cpu() for t in next(iter(job.train_loader)))

    def grad_fn(m: nn.Module) -> None:
        F.cross_entropy(m(xb), yb).backward()

    def between_steps(step: int, partial: dict[str, Any]) -> None:
        if config.step_epochs:
            log(
                f"fine-tuning {config.step_epochs} epoch(s) after pruning step {step + 1}/{settings.steps}"
            )
            model.compress_header = model.compress_header.replace(
                pruning=append_record(source.compress_header.pruning, partial)
            )
            job.finetune(model, job, out / f"step{step + 1}", config.step_epochs)
            model.cpu()

    feasible = max_feasible_ratio(model, settings.round_to)
    record = prune_channels(model, shape, settings, grad_fn=grad_fn, between_steps=between_steps)
    if record["layers_left_whole"]:
        log(
            f"note: with round_to {settings.round_to}, {record['layers_left_whole']} layer(s) keep all "
            f"their channels at ratio {settings.ratio:.3f} (fewer than {settings.round_to} would be "
            f"left); {100 * record['achieved_channel_ratio']:.1f}% of all channels were removed. "
            f"Every layer can take a ratio up to {feasible:.3f}."
        )
    model.compress_header = model.compress_header.replace(
        pruning=append_record(source.compress_header.pruning, record)
    )
    model.to(device)
    recalibrated = recalibrate_bn(model, job.train_loader, config.bn_recalibration)
    after_prune = _measure(model, shape, eval_loader, config)
    after_prune["bn_recalibration_images"] = recalibrated
    save_model(
        model,
        out / "model.safetensors",
        parent=config.model,
        config_hash=digest,
        metrics={"top1": after_prune["top1"]},
    )
    after_prune["file_bytes"] = (out / "model.safetensors").stat().st_size
    plan = {
        "config_hash": digest,
        "latency_probes": probes,
        "latency_budget_ms": budget_ms,
        "ratio": settings.ratio,
        "before": before,
        "after_prune": after_prune,
    }
    atomic_write_json(out / PLAN_FILE, plan)
    log(
        f"pruned {config.model}: {before['params']:,} → {after_prune['params']:,} params, "
        f"{before['macs'] / 1e6:.2f} → {after_prune['macs'] / 1e6:.2f} M MACs, top-1 "
        f"{100 * before['top1']:.2f}% → {100 * after_prune['top1']:.2f}% (before fine-tuning"
        + (
            f"; BatchNorm statistics re-estimated on {recalibrated:,} training images)"
            if recalibrated
            else ")"
        )
    )
    return model, plan


def report_table(
    before: dict[str, Any], pruned: dict[str, Any], after: dict[str, Any], tuned: bool
) -> str:
    """The before/after Markdown table printed by ``compress prune``."""
    cols = [("before", before), ("pruned", pruned)] + ([("fine-tuned", after)] if tuned else [])
    rows = [
        ("parameters", lambda f: f"{f['params']:,}"),
        ("MACs", lambda f: f"{f['macs'] / 1e6:.2f} M"),
        ("file size", lambda f: f"{f['file_bytes'] / 1e6:.2f} MB" if "file_bytes" in f else "–"),
        ("test top-1", lambda f: f"{100 * f['top1']:.2f}%"),
    ]
    for rt in ("torch", "onnxruntime"):
        for b in ("1", "64"):
            rows.append(
                (
                    f"{rt} CPU batch {b}",
                    lambda f, rt=rt, b=b: (
                        f"{f['latency_ms'][rt][b]:.2f} ms" if "latency_ms" in f else "–"
                    ),
                )
            )
    header = "| | " + " | ".join(name for name, _ in cols) + " |"
    lines = [header, "|---|" + "---|" * len(cols)]
    for label, fmt in rows:
        cells = []
        for _, facts in cols:
            try:
                cells.append(fmt(facts))
            except (KeyError, TypeError):
                cells.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
