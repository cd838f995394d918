"""The one training loop: any `Task`, per-epoch evaluation, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from compress.artifacts import append_jsonl, atomic_write_json, read_header, save_model
from compress.engine.checkpoint import (
    check_resume,
    load_state,
    rng_state,
    save_state,
    set_rng_state,
)
from compress.engine.metrics import evaluate
from compress.engine.optim import build_optimizer, build_scheduler
from compress.engine.progress import Progress, epoch_line
from compress.engine.settings import TrainSettings
from compress.engine.tasks import Task
from compress.errors import CompressError, TrainingDivergedError

BEST_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
#: Per-step scalars go to TensorBoard / wandb every this many optimiser steps.
STEP_LOG_EVERY = 10
SUMMARY_FILE = "summary.json"

Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]


def autocast_dtype(settings: TrainSettings, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `device` (CUDA only), or ``None``."""
    if device.type != "cuda":
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.amp)


def fit(
    task: Task,
    train_loader: Any,
    eval_loader: Loader,
    settings: TrainSettings,
    *,
    out_dir: str | Path,
    device: torch.device,
    config_hash: str,
    save_meta: dict[str, Any] | None = None,
    summary_extra: dict[str, Any] | None = None,
    resume: bool = False,
    per_class: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train `task` for ``settings.epochs`` epochs, evaluating `task.model` after each.

    Writes into `out_dir`: ``model.safetensors`` (best test top-1), ``last.safetensors``,
    ``state.pt`` (for ``resume``), ``metrics.jsonl`` (one line per epoch) and ``summary.json``.
    Every file is written atomically, so a kill at any moment leaves a resumable run.

    Args:
        task: what to train; ``task.model`` is evaluated and saved.
        train_loader: batches of (images, labels) with ``set_epoch(epoch)``.
        eval_loader: the evaluation batches.
        settings: epochs, optimiser, schedule, precision.
        out_dir: the run directory.
        device: where to train.
        config_hash: hash of the resolved config; a resume checks it is unchanged.
        save_meta: header fields for the saved model files (dataset, normalisation, teacher...).
        summary_extra: extra entries for ``summary.json``.
        resume: continue from ``out_dir/state.pt``.
        per_class: also record the best model's test top-1 of every class (``per_class_top1``;
            for the label-noise and imbalance protocols).
        log: where epoch lines go.

    Returns:
        The summary (also written to ``summary.json``); ``top1`` is the best epoch's test top-1
        (0–1), ``top1_last`` the last epoch's.

    Raises:
        TrainingDivergedError: the loss became NaN/inf; the last good files are kept.
    """
    from compress.distributed import all_reduce_sum, barrier, env, wrap

    dist = env()
    main = dist.is_main  # only rank 0 writes files and logs
    if not main:
        log = _quiet
    out = Path(out_dir)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    task.to(device)
    use_cl = device.type == "cuda" and settings.channels_last
    if use_cl:
        task.to(memory_format=torch.channels_last)
    steps_per_epoch = len(train_loader)
    images = getattr(train_loader, "num_samples", None)
    from compress.distributed import agree

    agree("training data", f"{images} images in {steps_per_epoch} batches an epoch")
    if steps_per_epoch < 1 or (images is not None and images < 2):
        raise CompressError(
            f"the training set has {images} image(s): training needs at least 2 (BatchNorm needs "
            "two images per batch); add images or check --data-dir"
        )
    optim = settings.optim
    if settings.lr_scale == "linear" and dist.world_size > 1:  # LR × global batch / per-process
        import dataclasses

        optim = dataclasses.replace(optim, lr=optim.lr * dist.world_size)
    if settings.sync_bn and dist.enabled:
        if device.type != "cuda":
            raise CompressError(
                "--sync-bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only; drop it on the CPU"
            )
        task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
    optimizer = build_optimizer(task.trainable_parameters(), optim)
    scheduler = build_scheduler(
        optimizer, settings.schedule, steps_per_epoch=steps_per_epoch, epochs=settings.epochs
    )
    amp = autocast_dtype(settings, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    meta = dict(save_meta or {})

    start_epoch, best_top1, best_epoch, global_step = 0, -1.0, 0, 0
    task_facts: dict[str, Any] = {}
    if resume:
        check_resume(out / STATE_FILE, config_hash)
        state = load_state(out / STATE_FILE)
        try:
            task.load_checkpoint_state(state["task"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CompressError(
                f"'{out / STATE_FILE}' does not fit this run ({first}); start a new run in another "
                "--output"
            ) from None
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        if not 0 <= start_epoch <= settings.epochs:
            raise CompressError(
                f"'{out / STATE_FILE}' says epoch {start_epoch}, outside this run's "
                f"{settings.epochs} epochs; start a new run in another --output"
            )
        best_top1, best_epoch = _best_on_disk(out, state)
        if main:
            _truncate_metrics(out / METRICS_FILE, start_epoch)
        task.to(device)
        log(
            f"resuming {out} after epoch {start_epoch}/{settings.epochs} (best so far {100 * best_top1:.2f}%)"
        )
    elif main and (out / METRICS_FILE).exists():
        (out / METRICS_FILE).unlink()

    from compress.engine.loggers import CSVLogger, curves_plot, make_loggers

    loggers = make_loggers(settings.loggers, out, settings) if main else []
    step_loggers = [lg for lg in loggers if not isinstance(lg, CSVLogger)]  # per-step scalars
    parallel = wrap(task, device)  # DDP over what trains; teachers stay frozen replicas
    substeps = task.substeps
    if substeps > 1 and (dist.enabled or settings.compile):
        raise CompressError(
            "this method updates its networks one after another within a step, which torchrun "
            "and torch.compile do not support here; run it in one process without --compile"
        )
    step_fn = torch.compile(parallel) if settings.compile else parallel
    progress = Progress(settings.progress)
    history_rate: list[float] = []
    record: dict[str, Any] = {}
    last_eval: dict[str, float] = {}
    for epoch in range(start_epoch, settings.epochs):
        train_loader.set_epoch(epoch)
        task.on_epoch_start(epoch, settings.epochs)
        parallel.train()
        progress.start_epoch(epoch, settings.epochs, steps_per_epoch)
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        correct = torch.zeros((), device=device)
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(train_loader):
            ctx = (
                torch.autocast(device.type, dtype=amp)
                if amp is not None
                else contextlib.nullcontext()
            )
            for sub in range(substeps):  # 1, or a task's sequential updates (DML alternating)
                with ctx:
                    step_out = step_fn(x, y) if substeps == 1 else task.substep(sub, x, y)
                if sub == 0:
                    outputs = step_out  # logged and counted: the first (the saved) network's
                loss = step_out["loss"]
                finite = torch.isfinite(loss.detach())
                if device.type == "cpu":
                    if not bool(finite):
                        _diverged(
                            out,
                            epoch,
                            i,
                            steps_per_epoch,
                            global_step,
                            loss,
                            start_epoch > 0 or epoch > 0,
                        )
                else:
                    first_bad = torch.where(
                        (~finite) & (first_bad < 0), torch.as_tensor(i, device=device), first_bad
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if settings.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(
                        list(task.trainable_parameters()), settings.grad_clip
                    )
                scaler.step(optimizer)
                scaler.update()
            epoch_lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            scheduler.step()
            global_step += 1
            n = len(y)
            seen += n
            for key, value in outputs.items():
                if key == "logits" or not torch.is_tensor(value) or value.ndim != 0:
                    continue
                sums[key] = (
                    sums.get(key, torch.zeros((), device=device)) + value.detach().float() * n
                )
            logits = outputs.get("logits")
            if logits is not None and logits.shape[0] == n:
                correct += (logits.detach().argmax(1) == y).sum()
            if step_loggers and global_step % STEP_LOG_EVERY == 0:  # a sync: only when asked
                scalars = {
                    k: float(v.detach()) for k, v in outputs.items()
                    if k != "logits" and torch.is_tensor(v) and v.ndim == 0
                }  # fmt: skip
                scalars["lr"] = epoch_lr
                scalars["images_per_s"] = seen / max(1e-9, time.perf_counter() - t0)
                for lg in step_loggers:
                    lg.step(global_step, scalars)
            if device.type != "cpu" and (i + 1) % 50 == 0 and int(first_bad) >= 0:
                _diverged(out, epoch, int(first_bad), steps_per_epoch, global_step, loss, epoch > 0)
            if progress.enabled and (i % 10 == 0 or i + 1 == steps_per_epoch):
                rate = seen / max(1e-9, time.perf_counter() - t0)
                progress.update(
                    i + 1,
                    f"loss {float(sums['loss']) / max(1, seen):.4f}  acc {100 * float(correct) / max(1, seen):.1f}%  "
                    f"{rate:.0f} img/s",
                )
        progress.end_epoch()
        if device.type != "cpu" and int(first_bad) >= 0:
            _diverged(out, epoch, int(first_bad), steps_per_epoch, global_step, loss, epoch > 0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.perf_counter() - t0
        if dist.enabled:  # the epoch's sums over every rank's share
            keys = sorted(sums)
            totals = all_reduce_sum([float(sums[k]) for k in keys] + [float(correct), seen])
            sums = {k: torch.tensor(v) for k, v in zip(keys, totals)}
            correct, seen = torch.tensor(totals[-2]), int(totals[-1])
        deployed, task_facts = task.deployable(eval_loader, amp)
        last_eval = evaluate(deployed, eval_loader, autocast_dtype=amp)
        improved = last_eval["top1"] > best_top1
        if improved:
            best_top1, best_epoch = last_eval["top1"], epoch + 1
        record = {
            "epoch": epoch + 1,
            "lr": epoch_lr,
            "train_loss": float(sums.get("loss", torch.zeros(()))) / max(1, seen),
            "train_top1": float(correct) / seen if seen else None,
            **{f"train_{k}": float(v) / max(1, seen) for k, v in sums.items() if k != "loss"},
            "test_loss": last_eval["loss"],
            "top1": last_eval["top1"],
            "top5": last_eval["top5"],
            "best_top1": best_top1,
            "images_per_s": seen / train_time if train_time > 0 else 0.0,
            "seconds": train_time,
            **task_facts,
        }
        history_rate.append(record["images_per_s"])
        metrics = {"top1": last_eval["top1"], "top5": last_eval["top5"], "epoch": epoch + 1}
        model_cpu_meta = {**meta, "metrics": metrics, "config_hash": config_hash}
        if not main:
            log(epoch_line(record, settings.epochs))
            continue
        save_model(deployed, out / LAST_FILE, **model_cpu_meta)
        if improved:
            save_model(deployed, out / BEST_FILE, **model_cpu_meta)
        save_state(
            out / STATE_FILE,
            {
                "epoch": epoch + 1,
                "global_step": global_step,
                "task": {k: v.detach().cpu() for k, v in task.checkpoint_state().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "rng": rng_state(),
                "best": {"top1": best_top1, "epoch": best_epoch},
                "config_hash": config_hash,
            },
        )
        append_jsonl(out / METRICS_FILE, record)
        records = _read_metrics(out / METRICS_FILE)
        for lg in loggers:
            lg.epoch(records)
        log(epoch_line(record, settings.epochs))

    for lg in loggers:
        lg.close()
    if main:
        curves_plot(_read_metrics(out / METRICS_FILE), out / CURVES_FILE)
    barrier()  # every rank sees rank 0's last files
    top1_last, top5_last = _last_metrics(out, record, last_eval)
    summary = {
        "top1": best_top1,
        "top1_last": top1_last,
        "top5_last": top5_last,
        "best_epoch": best_epoch,
        "epochs": settings.epochs,
        "params": sum(p.numel() for p in task.model.parameters()),
        "images_per_s": sum(history_rate) / len(history_rate) if history_rate else None,
        "device": str(device),
        "world_size": dist.world_size,
        "global_batch": (_batch_size(train_loader) or 0) * dist.world_size,
        "backend": dist.backend,
        "config_hash": config_hash,
        "model_file": BEST_FILE,
        **({"deployed": task_facts} if task_facts else {}),
        **(summary_extra or {}),
    }
    if per_class:
        from compress.artifacts import load_model
        from compress.engine.metrics import per_class_top1

        barrier()  # rank 0 has written the best model
        best = load_model(out / BEST_FILE, device=device)
        summary["per_class_top1"] = per_class_top1(
            best, eval_loader, best.compress_header.num_classes
        )
    if main:
        atomic_write_json(out / SUMMARY_FILE, summary)
    barrier()
    return summary


def _quiet(_message: str) -> None:
    """The log of ranks other than 0."""


def _batch_size(loader: Any) -> int | None:
    return getattr(loader, "batch_size", None)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of ``metrics.jsonl`` (empty when there is none yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _diverged(
    out: Path, epoch: int, step: int, steps: int, global_step: int, loss: torch.Tensor, saved: bool
) -> None:
    value = "nan" if math.isnan(float(loss.detach())) else "inf"
    kept = (
        f"kept the last good checkpoint in {out} ({LAST_FILE}, {STATE_FILE})"
        if saved
        else "no checkpoint had been written yet"
    )
    raise TrainingDivergedError(
        f"the loss became {value} at epoch {epoch + 1}, step {step + 1}/{steps}; training stopped and "
        f"{kept}; lower the learning rate or enable grad_clip"
    )


def _best_on_disk(out: Path, state: dict[str, Any]) -> tuple[float, int]:
    """The best top-1 so far, read from model.safetensors itself (consistent with the file)."""
    best = out / BEST_FILE
    if best.exists():
        metrics = read_header(best).metrics or {}
        if "top1" in metrics:
            return float(metrics["top1"]), int(metrics.get("epoch", 0))
    saved = state.get("best") or {}
    return float(saved.get("top1", -1.0)), int(saved.get("epoch", 0))


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (a kill can land between the two)."""
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= epochs_done:
                lines.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # a torn last line
    from compress.artifacts import atomic_write_text

    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _last_metrics(
    out: Path, record: dict[str, Any], last_eval: dict[str, float]
) -> tuple[float | None, float | None]:
    if record:
        return record["top1"], record["top5"]
    # nothing trained in this call (resumed a finished run): read the log
    path = out / METRICS_FILE
    if path.exists():
        lines = path.read_text().splitlines()
        if lines:
            last = json.loads(lines[-1])
            return last.get("top1"), last.get("top5")
    return last_eval.get("top1"), last_eval.get("top5")
