"""``compress distill``: train a student from a teacher with any registered method."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
from compress.engine.settings import TrainSettings
from compress.errors import CompressError
from compress.outputs import run_directory_main

__all__ = ["METHODS", "distill", "list_methods", "train_student"]


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
    from compress.distributed import together

    device = resolve_device(config.device)
    with together():  # under torchrun, a data error on one rank stops every rank at once
        # with a teacher, the data comes at the teacher's recorded size and normalisation
        data = (
            load_data_for_model(header, config.data, what="teacher", seed=config.seed)
            if config.teacher
            else load_data(config.data, seed=config.seed)
        )
    info = data.info
    stem = f"{config.student}_{config.method}_{info.name}"
    out = Path(config.output) if config.output else default_output_dir("distill", stem)
    from compress.distributed import env, rank_log

    main = env().is_main
    log = rank_log(log)
    with run_directory_main(out, kind="distill", resume=config.resume):
        digest = config_hash(
            {"config": hashed_dict(config), "teacher": teacher_ref and teacher_ref["sha256"]}
        )
        if config.resume:
            _check_resume(out, config, digest)
        if main:
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
        if main:
            with atomic_path(out / "model.safetensors") as tmp:
                shutil.copyfile(out / f"seed{config.seed}" / "model.safetensors", tmp)
            atomic_write_json(out / "summary.json", summary)
        log(
            f"{config.seeds} seeds: best-epoch top-1 {100 * summary['top1_mean']:.2f} ± {100 * summary['top1_std']:.2f}%, "
            f"last {100 * summary['top1_last_mean']:.2f} ± {100 * summary['top1_last_std']:.2f}% → {out / 'summary.json'}"
        )
    return {**summary, "output": str(out)}


def _check_resume(out: Path, config: DistillConfig, digest: str) -> None:
    from compress.engine.checkpoint import check_resume

    dirs = [out] if config.seeds == 1 else sorted(out.glob("seed*"))
    for d in dirs:
        if (d / "state.pt").exists():
            check_resume(d / "state.pt", digest, config)


def train_student(
    student: nn.Module,
    teacher: nn.Module | None,
    *,
    method: str,
    settings: Any,
    data: Any,
    data_settings: Any,
    train: TrainSettings,
    out_dir: Path,
    device: torch.device,
    digest: str,
    save_meta: dict[str, Any] | None = None,
    summary_extra: dict[str, Any] | None = None,
    resume: bool = False,
    log: Any = print,
    callbacks: list[Any] | None = None,
    keep: str = "best",
) -> dict[str, Any]:
    """Train `student` against `teacher` with `method`: the one distillation loop.

    ``compress distill`` calls it for a fresh student, ``compress prune`` to fine-tune a pruned
    model. The teacher's facts (params, MACs, top-1) go into the log and the summary.

    Args:
        student: the network that trains (its header is kept in the saved files).
        teacher: the frozen teacher, or ``None`` for methods without one.
        method: a registered method name.
        settings: the method's settings object (`compress.distill.config.method_settings`).
        data: the loaded dataset (`compress.data.load_data`).
        data_settings: its batching and augmentation settings.
        train: the engine settings (epochs, optimiser, schedule, seed, ...).
        out_dir: where the model files, checkpoint, metrics and summary go.
        device: the training device.
        digest: the run's config hash (checked on resume).
        save_meta: header fields for the saved model files.
        summary_extra: entries added to ``summary.json``.
        resume: continue from ``out_dir/state.pt``.
        log: where progress lines go.
        callbacks: more hooks into the training loop (``compress quantize``'s QAT schedule).
        keep: which epoch ``model.safetensors`` holds: ``best`` (by test top-1, as KD papers
            report) or ``last``.

    Returns:
        The run summary (``summary.json``).
    """
    from compress.data import build_loaders, holdout_loader
    from compress.engine import fit

    spec = METHODS.get(method)
    info = data.info
    channels_last = device.type == "cuda" and train.channels_last
    train_loader, eval_loader = build_loaders(
        data, data_settings, device=device, seed=train.seed, channels_last=channels_last
    )
    ctx = DistillContext(
        info=info,
        device=device,
        seed=train.seed,
        eval_loader=eval_loader,
        train_loader=train_loader,
        holdout=lambda n: holdout_loader(data, data_settings, n, device=device),
        log=log,
    )
    if teacher is not None:
        teacher.to(device)
        ctx.report["teacher"] = t = model_facts(
            teacher, (info.in_channels, *info.input_size), eval_loader
        )
        log(
            f"{'teacher':<15} {t['params'] / 1e6:.3f} M params, {t['macs'] / 1e6:.2f} M MACs, top-1 {100 * t['top1']:.2f}%"
        )
        ctx.sample_batch = next(iter(train_loader))
    task = spec.build(student, teacher, settings, ctx)
    phase = spec.init_phase(task, settings) if spec.init_phase is not None else None
    if phase is not None:
        init_task, init_epochs = phase
        ctx.report["init_phase"] = run_init_phase(
            init_task,
            init_epochs,
            train_loader,
            eval_loader,
            train,
            out_dir=out_dir,
            device=device,
            digest=digest,
            save_meta=save_meta,
            log=log,
        )
    return fit(
        task,
        train_loader,
        eval_loader,
        train,
        out_dir=out_dir,
        device=device,
        config_hash=digest,
        save_meta=save_meta,
        summary_extra={**(summary_extra or {}), **ctx.report, "data_protocol": info.protocol},
        resume=resume,
        per_class=info.protocol is not None,
        log=log,
        callbacks=callbacks,
        keep=keep,
    )


INIT_DIR = "init"


def run_init_phase(
    task: Any,
    epochs: int,
    train_loader: Any,
    eval_loader: Any,
    train: TrainSettings,
    *,
    out_dir: Path,
    device: torch.device,
    digest: str,
    save_meta: dict[str, Any] | None,
    log: Any,
) -> dict[str, Any]:
    """A method's initialisation phase, in ``out_dir/init/``, before the run's own epochs.

    It trains ``task`` (which shares the student with the run) for `epochs` epochs at the
    run's learning rate, constant, with the run's optimiser. A phase that finished is not run
    again: its last student is loaded instead, so a run killed in either phase resumes where
    it stopped.

    Returns:
        The phase's summary (``summary.json`` of ``init/``).
    """
    import dataclasses
    import json

    from compress.artifacts import load_state as load_tensors
    from compress.engine import fit
    from compress.engine.settings import ScheduleSettings

    folder = out_dir / INIT_DIR
    done = folder / "summary.json"
    if done.exists():
        summary = json.loads(done.read_text())
        if summary.get("config_hash") == digest:
            state = load_tensors(folder / "last.safetensors")
            task.model.load_state_dict(state)
            log(f"initialisation phase: finished before ({epochs} epochs), its student loaded")
            return summary
    from compress.distributed import env

    if env().is_main:
        folder.mkdir(parents=True, exist_ok=True)
    log(f"initialisation phase: {epochs} epoch(s) before the run's own")
    settings = dataclasses.replace(train, epochs=epochs, schedule=ScheduleSettings(name="constant"))
    return fit(
        task,
        train_loader,
        eval_loader,
        settings,
        out_dir=folder,
        device=device,
        config_hash=digest,
        save_meta=save_meta,
        resume=(folder / "state.pt").exists(),
        log=log,
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
    import dataclasses as dc
    import json

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
    from compress.distributed import env

    if env().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    student = create_model(
        config.student,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        **config.student_kwargs,
    )
    teacher = load_model(config.teacher) if (config.teacher and spec.needs_teacher) else None
    log(
        f"distil {config.student} ({count_params(student) / 1e6:.3f} M params) with {config.method} on "
        f"{describe_data(info)}, {config.epochs} epochs, seed {seed}, on {device} → {run_dir}"
    )
    summary = train_student(
        student,
        teacher,
        method=config.method,
        settings=config.settings(),
        data=data,
        data_settings=config.data,
        train=dc.replace(config, seed=seed),
        out_dir=run_dir,
        device=device,
        digest=digest,
        save_meta={
            **info.header(),
            "teacher": teacher_ref if spec.needs_teacher else None,
            "extra": {"method": config.method, "method_args": config.method_args, "seed": seed},
        },
        summary_extra={
            "student": config.student,
            "method": config.method,
            "dataset": info.name,
            "seed": seed,
            "teacher_file": teacher_ref if spec.needs_teacher else None,
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
