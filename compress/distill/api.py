"""``compress distill``: train a student from a teacher with any registered method."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from pathlib import Path
from typing import Any

import torch

from compress.artifacts import (
    atomic_path,
    atomic_write_json,
    default_output_dir,
    file_ref,
    load_model,
    read_header,
)
from compress.config import config_hash, hashed_dict, write_config
from compress.distill.base import DistillContext, MethodSpec
from compress.distill.config import DistillConfig
from compress.distill.methods import METHODS, list_methods
from compress.engine.metrics import model_facts
from compress.errors import CompressError
from compress.outputs import run_directory

__all__ = ["METHODS", "distill", "list_methods"]


def _check_method(config: DistillConfig, spec: MethodSpec) -> None:
    name = config.method
    if spec.online and config.teacher:
        raise CompressError(
            f"method '{name}' trains students together without a pretrained teacher; drop --teacher, "
            "or pick a teacher-based method (kd, dist, dkd, r2kd)"
        )
    if spec.needs_teacher and not config.teacher:
        raise CompressError(
            f"method '{name}' needs --teacher FILE: a model file written by `compress train` on the same dataset"
        )


def distill(config: DistillConfig, *, log: Any = print) -> dict[str, Any]:
    """Distil ``config.student`` from ``config.teacher`` with ``config.method``.

    With ``seeds > 1`` each seed trains in ``output/seed<N>/`` and ``output/summary.json`` gives
    ``top1_mean``/``top1_std`` (sample std) of the best epoch and of the last; ``top1`` and
    ``top1_last`` are then the means, and ``output/model.safetensors`` is the first seed's model.

    Returns:
        The summary (``summary.json``) plus ``"output"``.

    Raises:
        CompressError: unknown method, missing or mismatched teacher, a teacher given to an
            online method, an output directory that already holds a run.
    """
    from compress.data import load_data, load_data_for_model
    from compress.engine import resolve_device

    spec: MethodSpec = METHODS.get(config.method)
    _check_method(config, spec)
    teacher_ref = None
    if config.teacher:
        header = read_header(config.teacher)  # clear error when missing or corrupt
        teacher_ref = file_ref(config.teacher)
    if not config.data.name:  # the teacher's dataset, named in the saved config
        if config.teacher and not header.dataset:
            raise CompressError(
                f"the teacher '{config.teacher}' records no dataset; pass --dataset (and --data-dir)"
            )
        name = header.dataset if config.teacher else "digits"
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, name=name))
    device = resolve_device(config.device)
    # with a teacher, the data comes at the teacher's recorded size and normalisation
    data = (
        load_data_for_model(header, config.data, what="teacher")
        if config.teacher
        else load_data(config.data)
    )
    info = data.info
    stem = f"{config.student}_{config.method}_{info.name}"
    out = Path(config.output) if config.output else default_output_dir("distill", stem)
    with run_directory(out, kind="distill", resume=config.resume):
        digest = config_hash(
            {"config": hashed_dict(config), "teacher": teacher_ref and teacher_ref["sha256"]}
        )
        if config.resume:
            _check_resume(out, config, digest)
        write_config(config, out, digest=digest)
        if config.teacher and not spec.needs_teacher:
            log(f"method '{config.method}' trains without a teacher: {config.teacher} is not used")
        runs = []
        for k in range(config.seeds):
            seed = config.seed + k
            run_dir = out if config.seeds == 1 else out / f"seed{seed}"
            runs.append(
                _run_seed(config, spec, seed, run_dir, data, device, digest, teacher_ref, log)
            )
        if config.seeds == 1:
            return {**runs[0], "output": str(out)}
        summary = _aggregate(runs, config, digest)
        with atomic_path(out / "model.safetensors") as tmp:
            shutil.copyfile(out / f"seed{config.seed}" / "model.safetensors", tmp)
        atomic_write_json(out / "summary.json", summary)
        log(
            f"{config.seeds} seeds: best-epoch top-1 {100 * summary['top1_mean']:.2f} ± {100 * summary['top1_std']:.2f}%, "
            f"last {100 * summary['top1_last_mean']:.2f} ± {100 * summary['top1_last_std']:.2f}% → {out / 'summary.json'}"
        )
    return {**summary, "output": str(out)}


def _check_resume(out: Path, config: DistillConfig, digest: str) -> None:
    from compress.engine.checkpoint import load_state

    dirs = [out] if config.seeds == 1 else sorted(out.glob("seed*"))
    for d in dirs:
        if (d / "state.pt").exists() and load_state(d / "state.pt").get("config_hash") != digest:
            raise CompressError(
                f"the config or teacher differs from the one '{d}' was started with; resume with the same "
                "config and teacher, or start a new --output"
            )


def _run_seed(
    config: DistillConfig,
    spec: MethodSpec,
    seed: int,
    run_dir: Path,
    data: Any,
    device: torch.device,
    digest: str,
    teacher_ref: dict[str, str] | None,
    log: Any,
) -> dict[str, Any]:
    import json

    from compress.data import build_loaders, holdout_loader
    from compress.engine import fit
    from compress.models import count_params, create_model
    from compress.train import describe_data

    info = data.info
    done = run_dir / "summary.json"
    if config.seeds > 1 and done.exists():
        previous = json.loads(done.read_text())
        if previous.get("config_hash") == digest:
            log(f"seed {seed}: already finished (top-1 {100 * previous['top1']:.2f}%), skipped")
            return previous
    resume = config.resume and (run_dir / "state.pt").exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    student = create_model(
        config.student,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        **config.student_kwargs,
    )
    teacher = load_model(config.teacher) if (config.teacher and spec.needs_teacher) else None
    channels_last = device.type == "cuda" and config.channels_last
    train_loader, eval_loader = build_loaders(
        data, config.data, device=device, seed=seed, channels_last=channels_last
    )
    shape = (info.in_channels, *info.input_size)
    ctx = DistillContext(
        info=info,
        device=device,
        seed=seed,
        eval_loader=eval_loader,
        train_loader=train_loader,
        holdout=lambda n: holdout_loader(data, config.data, n, device=device),
        log=log,
    )
    log(
        f"distil {config.student} ({count_params(student) / 1e6:.3f} M params) with {config.method} on "
        f"{describe_data(info)}, {config.epochs} epochs, seed {seed}, on {device} → {run_dir}"
    )
    if teacher is not None:
        teacher.to(device)
        ctx.report["teacher"] = model_facts(teacher, shape, eval_loader)
        t = ctx.report["teacher"]
        log(
            f"{'teacher':<15} {t['params'] / 1e6:.3f} M params, {t['macs'] / 1e6:.2f} M MACs, top-1 {100 * t['top1']:.2f}%"
        )
        ctx.sample_batch = next(iter(train_loader))
    task = spec.build(student, teacher, config.settings(), ctx)
    save_meta = {
        **info.header(),
        "teacher": teacher_ref if spec.needs_teacher else None,
        "extra": {"method": config.method, "method_args": config.method_args, "seed": seed},
    }
    summary = fit(
        task,
        train_loader,
        eval_loader,
        config,
        out_dir=run_dir,
        device=device,
        config_hash=digest,
        save_meta=save_meta,
        summary_extra={
            "student": config.student,
            "method": config.method,
            "dataset": info.name,
            "seed": seed,
            "teacher_file": teacher_ref if spec.needs_teacher else None,
            **ctx.report,
        },
        resume=resume,
        log=log,
    )
    log(
        f"best top-1 {100 * summary['top1']:.2f}% (epoch {summary['best_epoch']}), last "
        f"{100 * summary['top1_last']:.2f}% → {run_dir / 'model.safetensors'}"
    )
    return summary


def _aggregate(runs: list[dict[str, Any]], config: DistillConfig, digest: str) -> dict[str, Any]:
    best = [r["top1"] for r in runs]
    last = [r["top1_last"] for r in runs]
    first = runs[0]
    return {
        "top1": statistics.fmean(best),
        "top1_last": statistics.fmean(last),
        "top1_mean": statistics.fmean(best),
        "top1_std": statistics.stdev(best),
        "top1_last_mean": statistics.fmean(last),
        "top1_last_std": statistics.stdev(last),
        "seeds": [r["seed"] for r in runs],
        "per_seed": [
            {"seed": r["seed"], "top1": r["top1"], "top1_last": r["top1_last"]} for r in runs
        ],
        "epochs": config.epochs,
        "params": first["params"],
        "student": config.student,
        "method": config.method,
        "dataset": first.get("dataset"),
        "teacher_file": first.get("teacher_file"),
        "teacher": first.get("teacher"),
        "pruned_teacher": first.get("pruned_teacher"),
        "model_file": "model.safetensors",
        "model_seed": runs[0]["seed"],
        "config_hash": digest,
    }
