"""The one training loop: any `Task`, per-epoch evaluation, checkpoints, exact resume, callbacks.

`fit` builds a `Trainer` and runs it. The trainer's parts — set-up, resume, one epoch, one step,
the end-of-epoch evaluation and checkpoint, the summary — are separate methods, and everything
that is not the loop itself (loggers, the progress display, the divergence guard, quantization-
aware training) attaches through `compress.engine.callbacks` (Lightning's and Ultralytics'
callback lists are the model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from compress.artifacts import append_jsonl, atomic_write_json, read_header, save_model
from compress.engine.callbacks import Callback, CallbackList, Step
from compress.engine.checkpoint import (
    check_resume,
    load_state,
    rng_state,
    save_state,
    set_rng_state,
)
from compress.engine.guards import DivergenceGuard
from compress.engine.metrics import evaluate
from compress.engine.optim import build_optimizer, build_scheduler
from compress.engine.progress import ProgressCallback, epoch_line
from compress.engine.settings import TrainSettings
from compress.engine.tasks import Task
from compress.engine.threads import default_threads
from compress.errors import CompressError

BEST_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"

Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]

#: The run this process is training, for the command line's Ctrl-C message: its folder, the
#: epochs its checkpoint holds, and the run's epochs (``None`` when no run is in progress).
CURRENT: dict[str, Any] | None = None


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
    callbacks: list[Callback] | None = None,
    keep: str = "best",
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
        callbacks: more hooks into the loop (`compress.engine.callbacks`), after the built-in
            ones (divergence guard, progress, loggers).
        keep: ``best``: ``model.safetensors`` is the epoch with the best test top-1 (the KD
            papers' convention, recorded as ``top1``); ``last``: it is the last epoch's.

    Returns:
        The summary (also written to ``summary.json``); ``top1`` is the best epoch's test top-1
        (0–1), ``top1_last`` the last epoch's.

    Raises:
        TrainingDivergedError: the loss became NaN/inf; the last good files are kept.
    """
    trainer = Trainer(
        task,
        train_loader,
        eval_loader,
        settings,
        out_dir=Path(out_dir),
        device=device,
        config_hash=config_hash,
        save_meta=save_meta,
        log=log,
        callbacks=callbacks or [],
        keep=keep,
    )
    return trainer.run(resume=resume, per_class=per_class, summary_extra=summary_extra)


class Trainer:
    """The state of one training run and its parts (see the module docstring)."""

    def __init__(
        self,
        task: Task,
        train_loader: Any,
        eval_loader: Loader,
        settings: TrainSettings,
        *,
        out_dir: Path,
        device: torch.device,
        config_hash: str,
        save_meta: dict[str, Any] | None,
        log: Callable[[str], None],
        callbacks: list[Callback],
        keep: str = "best",
    ) -> None:
        from compress.distributed import env, rank_log

        self.task, self.train_loader, self.eval_loader = task, train_loader, eval_loader
        self.settings, self.out, self.device = settings, out_dir, device
        self.config_hash, self.meta = config_hash, dict(save_meta or {})
        self.dist = env()
        self.main = self.dist.is_main  # only rank 0 writes files and logs
        self.log = rank_log(log)
        self.extra_callbacks = callbacks
        self.keep = keep
        self.start_epoch, self.best_top1, self.best_epoch, self.global_step = 0, -1.0, 0, 0
        self.task_facts: dict[str, Any] = {}
        self.record: dict[str, Any] = {}
        self.last_eval: dict[str, float] = {}
        self.rates: list[float] = []

    # ------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        from compress.distributed import agree, wrap

        s, task, device = self.settings, self.task, self.device
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(s.threads or default_threads(torch.get_num_threads()))
        task.to(device)
        if device.type == "cuda":
            # fixed input shapes: let cuDNN time its algorithms once and keep the fastest
            torch.backends.cudnn.benchmark = True
        if device.type == "cuda" and s.channels_last:
            task.to(memory_format=torch.channels_last)
        self.steps_per_epoch = len(self.train_loader)
        images = getattr(self.train_loader, "num_samples", None)
        agree("training data", f"{images} images in {self.steps_per_epoch} batches an epoch")
        if self.steps_per_epoch < 1 or (images is not None and images < 2):
            raise CompressError(
                f"the training set has {images} image(s): training needs at least 2 (BatchNorm "
                "needs two images per batch); add images or check --data-dir"
            )
        optim = s.optim
        if s.lr_scale == "linear" and self.dist.world_size > 1:  # LR × global / per-process
            optim = dataclasses.replace(optim, lr=optim.lr * self.dist.world_size)
        if s.sync_bn and self.dist.enabled:
            if device.type != "cuda":
                raise CompressError(
                    "--sync-bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only; drop it on "
                    "the CPU"
                )
            task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
        self.optimizer = build_optimizer(task.trainable_parameters(), optim)
        self.scheduler = build_scheduler(
            self.optimizer, s.schedule, steps_per_epoch=self.steps_per_epoch, epochs=s.epochs
        )
        self.amp = autocast_dtype(s, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.parallel = wrap(task, device)  # DDP over what trains; teachers stay frozen
        if task.substeps > 1 and (self.dist.enabled or s.compile):
            raise CompressError(
                "this method updates its networks one after another within a step, which "
                "torchrun and torch.compile do not support here; run it in one process without "
                "--compile"
            )
        self.step_fn = torch.compile(self.parallel) if s.compile else self.parallel
        self.callbacks = CallbackList(self._builtin_callbacks() + self.extra_callbacks)

    def _builtin_callbacks(self) -> list[Callback]:
        from compress.engine.loggers import LoggingCallback

        callbacks: list[Callback] = [DivergenceGuard()]
        if self.main:
            callbacks.append(ProgressCallback(self.settings.progress, self.log))
            callbacks.append(LoggingCallback(self.settings.loggers, self.out, self.settings))
        return callbacks

    def _resume(self) -> None:
        path = self.out / STATE_FILE
        check_resume(path, self.config_hash)
        state = load_state(path)
        try:
            self.task.load_checkpoint_state(state["task"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CompressError(
                f"'{path}' does not fit this run ({first}); start a new run in another --output"
            ) from None
        self.start_epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        if not 0 <= self.start_epoch <= self.settings.epochs:
            raise CompressError(
                f"'{path}' says epoch {self.start_epoch}, outside this run's "
                f"{self.settings.epochs} epochs; start a new run in another --output"
            )
        self.best_top1, self.best_epoch = _best_on_disk(self.out, state)
        if self.main:
            _truncate_metrics(self.out / METRICS_FILE, self.start_epoch)
        self.task.to(self.device)
        self.callbacks.on_resume(self, state)
        self.log(
            f"resuming {self.out} after epoch {self.start_epoch}/{self.settings.epochs} (best so "
            f"far {100 * self.best_top1:.2f}%)"
        )

    # ------------------------------------------------------------------ the loop

    def run(
        self, *, resume: bool, per_class: bool, summary_extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Set up, resume if asked, train every remaining epoch, write the summary."""
        from compress.distributed import barrier

        global CURRENT
        threads = torch.get_num_threads()  # the process's, given back when the run ends
        try:
            self._setup()
            self.callbacks.on_fit_start(self)
            if resume:
                self._resume()
            elif self.main and (self.out / METRICS_FILE).exists():
                (self.out / METRICS_FILE).unlink()
            CURRENT = {
                "out": str(self.out),
                "done": self.start_epoch,
                "epochs": self.settings.epochs,
            }
            for epoch in range(self.start_epoch, self.settings.epochs):
                self._train_epoch(epoch)
                self._end_epoch(epoch)
            CURRENT = None
            barrier()  # every rank sees rank 0's last files
            summary = self._summary(per_class, summary_extra)
            self.callbacks.on_fit_end(self, summary)
            if self.main:
                atomic_write_json(self.out / SUMMARY_FILE, summary)
            barrier()
            return summary
        finally:
            torch.set_num_threads(threads)

    def _train_epoch(self, epoch: int) -> None:
        self.train_loader.set_epoch(epoch)
        self.task.on_epoch_start(epoch, self.settings.epochs)
        self.parallel.train()
        self.epoch_sums: dict[str, torch.Tensor] = {}
        self.epoch_seen = 0
        self.epoch_correct = torch.zeros((), device=self.device)
        self.callbacks.on_epoch_start(self, epoch)
        self.epoch_t0 = time.perf_counter()
        for i, (x, y) in enumerate(self.train_loader):
            self.callbacks.on_before_step(self, epoch, i)
            outputs, lr = self._step(epoch, i, x, y)
            self.step_lr = lr
            self.global_step += 1
            self._accumulate(outputs, y)
            step = Step(epoch, i, self.global_step, outputs, len(y), lr)
            self.callbacks.on_step_end(self, step)
        self.callbacks.on_batches_end(self, epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.epoch_time = time.perf_counter() - self.epoch_t0

    def _step(
        self, epoch: int, index: int, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], float]:
        """One batch: the task's update(s), each with its own backward and optimiser step."""
        s, task = self.settings, self.task
        ctx = (
            torch.autocast(self.device.type, dtype=self.amp)
            if self.amp is not None
            else contextlib.nullcontext()
        )
        outputs: dict[str, torch.Tensor] = {}
        for sub in range(task.substeps):  # 1, or a task's sequential updates (DML alternating)
            with ctx:
                out = self.step_fn(x, y) if task.substeps == 1 else task.substep(sub, x, y)
            if sub == 0:
                outputs = out  # logged and counted: the first (the saved) network's
            loss = out["loss"]
            self.callbacks.on_loss(self, loss, epoch, index)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if s.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(list(task.trainable_parameters()), s.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.scheduler.step()
        return outputs, lr

    def _accumulate(self, outputs: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        n = len(y)
        self.epoch_seen += n
        for key, value in outputs.items():
            if key == "logits" or not torch.is_tensor(value) or value.ndim != 0:
                continue
            zero = torch.zeros((), device=self.device)
            self.epoch_sums[key] = self.epoch_sums.get(key, zero) + value.detach().float() * n
        logits = outputs.get("logits")
        if logits is not None and logits.shape[0] == n:
            self.epoch_correct += (logits.detach().argmax(1) == y).sum()

    # ------------------------------------------------------------------ end of an epoch

    def _end_epoch(self, epoch: int) -> None:
        """Evaluate, record, save the files and the state, print the epoch's line."""
        sums, correct, seen = self._reduced()
        deployed, self.task_facts = self.task.deployable(self.eval_loader, self.amp)
        self.last_eval = evaluate(deployed, self.eval_loader, autocast_dtype=self.amp)
        improved = self.last_eval["top1"] > self.best_top1
        if improved:
            self.best_top1, self.best_epoch = self.last_eval["top1"], epoch + 1
        record = {
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "lr": self.step_lr,  # the rate the epoch's last step used
            "train_loss": float(sums.get("loss", torch.zeros(()))) / max(1, seen),
            "train_top1": float(correct) / seen if seen else None,
            **{f"train_{k}": float(v) / max(1, seen) for k, v in sums.items() if k != "loss"},
            "test_loss": self.last_eval["loss"],
            "top1": self.last_eval["top1"],
            "top5": self.last_eval["top5"],
            "best_top1": self.best_top1,
            "images_per_s": seen / self.epoch_time if self.epoch_time > 0 else 0.0,
            "seconds": self.epoch_time,
            **self.task_facts,
        }
        self.record = record
        self.rates.append(record["images_per_s"])
        if self.main:
            self._save(deployed, epoch, improved)
            append_jsonl(self.out / METRICS_FILE, record)
        self.callbacks.on_epoch_end(self, record)
        self.log(epoch_line(record, self.settings.epochs))

    def _reduced(self) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
        """The epoch's sums over every rank's share."""
        from compress.distributed import all_reduce_sum

        sums, correct, seen = self.epoch_sums, self.epoch_correct, self.epoch_seen
        if not self.dist.enabled:
            return sums, correct, seen
        keys = sorted(sums)
        totals = all_reduce_sum([float(sums[k]) for k in keys] + [float(correct), seen])
        return (
            {k: torch.tensor(v) for k, v in zip(keys, totals)},
            torch.tensor(totals[-2]),
            int(totals[-1]),
        )

    def _save(self, deployed: torch.nn.Module, epoch: int, improved: bool) -> None:
        metrics = {
            "top1": self.last_eval["top1"],
            "top5": self.last_eval["top5"],
            "epoch": epoch + 1,
        }
        meta = {**self.meta, "metrics": metrics, "config_hash": self.config_hash}
        save_model(deployed, self.out / LAST_FILE, **meta)
        if improved or self.keep == "last":
            save_model(deployed, self.out / BEST_FILE, **meta)
        state = {
            "epoch": epoch + 1,
            "global_step": self.global_step,
            "task": {k: v.detach().cpu() for k, v in self.task.checkpoint_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rng_state(),
            "best": {"top1": self.best_top1, "epoch": self.best_epoch},
            "config_hash": self.config_hash,
        }
        self.callbacks.on_checkpoint(self, state)
        save_state(self.out / STATE_FILE, state)
        if CURRENT is not None:
            CURRENT["done"] = epoch + 1

    def records(self) -> list[dict[str, Any]]:
        """Every epoch record of ``metrics.jsonl`` so far."""
        return _read_metrics(self.out / METRICS_FILE)

    # ------------------------------------------------------------------ the summary

    def _summary(self, per_class: bool, extra: dict[str, Any] | None) -> dict[str, Any]:
        from compress.distributed import barrier

        top1_last, top5_last = _last_metrics(self.out, self.record, self.last_eval)
        s = self.settings
        summary = {
            "top1": self.best_top1,
            "top1_last": top1_last,
            "top5_last": top5_last,
            "train_top1_last": _last_train_top1(self.out, self.record),
            "best_epoch": self.best_epoch,
            "epochs": s.epochs,
            "params": sum(p.numel() for p in self.task.model.parameters()),
            "images_per_s": sum(self.rates) / len(self.rates) if self.rates else None,
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "global_batch": (getattr(self.train_loader, "batch_size", None) or 0)
            * self.dist.world_size,
            "backend": self.dist.backend,
            "config_hash": self.config_hash,
            "environment": run_environment(s),
            "model_file": BEST_FILE,
            **({"deployed": self.task_facts} if self.task_facts else {}),
            **(extra or {}),
        }
        if per_class:
            from compress.artifacts import load_model
            from compress.engine.metrics import per_class_top1

            barrier()  # rank 0 has written the best model
            best = load_model(self.out / BEST_FILE, device=self.device)
            summary["per_class_top1"] = per_class_top1(
                best, self.eval_loader, best.compress_header.num_classes
            )
        return summary


def run_environment(settings: TrainSettings) -> dict[str, Any]:
    """What a result depends on besides the config: versions, CPU kernels, threads, seed.

    The same config on the same machine gives the same numbers; another CPU family (AVX2 vs
    AVX-512/AMX), torch version or thread count may move them (docs/reliability.md).
    """
    import platform

    from compress._version import __version__
    from compress.runtime.machine import cpu_flags, cpu_name

    return {
        "compress": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "seed": settings.seed,
    }


def _last_train_top1(out: Path, record: dict[str, Any]) -> float | None:
    """The last epoch's training top-1, on the training labels as given (noisy ones included)."""
    if record:
        return record.get("train_top1")
    lines = _read_metrics(out / METRICS_FILE)
    return lines[-1].get("train_top1") if lines else None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of ``metrics.jsonl`` (empty when there is none yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
    lines = _read_metrics(out / METRICS_FILE)
    if lines:
        return lines[-1].get("top1"), lines[-1].get("top5")
    return last_eval.get("top1"), last_eval.get("top5")
