"""Training logs people read: ``results.csv`` and ``curves.png`` always, TensorBoard and wandb on request.

One small interface: the trainer calls `step` every few batches (loss terms, learning rate,
images/s), `epoch` after each epoch (the record that also goes to ``metrics.jsonl``, which stays
for machines), and `close` at the end. Loggers are chosen by name (``--logger csv|tensorboard|
wandb``, repeatable); the optional ones import their package lazily and say which extra to
install when it is missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from compress.engine.callbacks import Callback
from compress.errors import CompressError

#: Logger names a config may list.
LOGGERS = ("csv", "tensorboard", "wandb")
#: The package each optional logger needs, and the extra that installs it.
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


def missing_extra(name: str) -> str | None:
    """Why logger `name` cannot run here (its package is not installed), or ``None``.

    Checked when the config is built, before a run folder is made, so that a missing extra
    never leaves a half-started run behind.
    """
    import importlib.util

    if name not in NEEDS:
        return None
    package, extra = NEEDS[name]
    if importlib.util.find_spec(package) is None:
        return f"--logger {name} needs {package}: pip install 'compress-toolkit[{extra}]'"
    return None


class Logger:
    """The interface: per-step scalars, per-epoch records, a close."""

    def step(self, step: int, values: dict[str, float]) -> None:
        """Scalars of one training step (loss terms, lr, images/s)."""

    def epoch(self, records: list[dict[str, Any]]) -> None:
        """Every epoch record so far (the latest last), after each epoch."""

    def close(self) -> None:
        """Flush and release."""


def _scalar_keys(records: Iterable[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and (value is None or isinstance(value, (int, float))):
                keys.append(key)
    return keys


class CSVLogger(Logger):
    """``results.csv``: one row per epoch, every scalar column (rewritten atomically each epoch)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "results.csv"

    def epoch(self, records: list[dict[str, Any]]) -> None:  # noqa: D102
        from compress.atomic import atomic_write_text

        keys = _scalar_keys(records)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: record.get(k) for k in keys})
        atomic_write_text(self.path, buf.getvalue())


class TensorBoardLogger(Logger):
    """TensorBoard event files in ``OUT/tensorboard``: per-step terms, per-epoch metrics, the config."""

    def __init__(self, out: Path, config_text: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CompressError(
                "--logger tensorboard needs tensorboard: pip install 'compress-toolkit[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.writer.add_text("config", f"```\n{config_text}\n```")

    def step(self, step: int, values: dict[str, float]) -> None:  # noqa: D102
        for key, value in values.items():
            self.writer.add_scalar(f"train_step/{key}", value, step)

    def epoch(self, records: list[dict[str, Any]]) -> None:  # noqa: D102
        record = records[-1]
        step = record.get("global_step", record["epoch"])  # the same axis as train_step/*
        for key, value in record.items():
            if key not in ("epoch", "global_step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:  # noqa: D102
        self.writer.close()


class WandbLogger(Logger):
    """Weights & Biases, offline unless the user's environment says otherwise (``WANDB_MODE``)."""

    def __init__(self, out: Path, config: dict[str, Any]) -> None:
        import os

        try:
            import wandb
        except ImportError:
            raise CompressError(
                "--logger wandb needs wandb: pip install 'compress-toolkit[wandb]'"
            ) from None
        os.environ.setdefault("WANDB_MODE", "offline")  # never reach the network unasked
        self.run = wandb.init(dir=str(out), config=config, project="compress", reinit=True)

    def step(self, step: int, values: dict[str, float]) -> None:  # noqa: D102
        self.run.log({f"train_step/{k}": v for k, v in values.items()}, step=step)

    def epoch(self, records: list[dict[str, Any]]) -> None:  # noqa: D102
        record = records[-1]
        self.run.log({f"epoch/{k}": v for k, v in record.items() if isinstance(v, (int, float))})

    def close(self) -> None:  # noqa: D102
        self.run.finish()


def make_loggers(names: Iterable[str], out: Path, config: Any) -> list[Logger]:
    """The loggers `names` asks for (csv is always on; unknown names get a suggestion)."""
    from compress.config import dump_yaml, to_dict
    from compress.registry import suggest

    wanted = list(dict.fromkeys(["csv", *names]))
    loggers: list[Logger] = []
    for name in wanted:
        if name not in LOGGERS:
            raise CompressError(
                f"unknown logger '{name}'.{suggest(name, LOGGERS)} Valid: {', '.join(LOGGERS)}"
            )
        if name == "csv":
            loggers.append(CSVLogger(out))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(out, dump_yaml(to_dict(config))))
        else:
            loggers.append(WandbLogger(out, to_dict(config)))
    return loggers


def curves_plot(records: list[dict[str, Any]], path: Path, *, title: str = "") -> Path | None:
    """``curves.png``: loss terms, top-1 (test and train) and the learning rate against the epoch.

    The total loss is a thick line drawn last, the terms thin and dashed, so no term hides
    another; the epoch axis has whole-epoch ticks; the title names the run's folder.
    """
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from compress.report.plots import save_figure

    epochs = [r["epoch"] for r in records]
    terms = [
        k
        for k in _scalar_keys(records)
        if k.startswith("train_") and k not in ("train_top1", "train_loss")
    ]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4), dpi=110)
    for i, key in enumerate([*terms, "test_loss"]):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            left.plot(
                epochs,
                values,
                marker=".",
                linestyle="--",
                linewidth=1,
                color=f"C{(i + 1) % 10}",
                label=key,
            )
    left.plot(epochs, [r.get("train_loss") for r in records], marker="o", linewidth=2.5,
              color="C0", label="train_loss (total)", zorder=5)  # fmt: skip
    left.set_ylabel("loss")
    left.set_yscale("symlog", linthresh=1e-3)
    left.legend(fontsize=7)
    middle.plot(epochs, [100 * r["top1"] for r in records], marker="o", label="test top-1")
    if any(r.get("train_top1") is not None for r in records):
        middle.plot(epochs, [100 * (r.get("train_top1") or 0) for r in records], marker=".",
                    linestyle="--", label="train top-1 (its labels)")  # fmt: skip
    middle.set_ylabel("top-1 (%)")
    middle.legend(fontsize=8)
    right.plot(epochs, [r.get("lr") for r in records], marker=".", color="C3")
    right.set_ylabel("learning rate (last step of the epoch)")
    for ax in (left, middle, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(title or path.parent.name, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


#: Per-step scalars go to TensorBoard / wandb every this many optimiser steps.
STEP_LOG_EVERY = 10


class LoggingCallback(Callback):
    """The loggers as a training-loop callback (main process only).

    Per-step scalars every `STEP_LOG_EVERY` steps (a host sync, so only when a logger wants
    them), every epoch's records after each epoch, ``curves.png`` and closing at the end.
    """

    def __init__(self, names: Iterable[str], out: Path, config: Any) -> None:
        self.loggers = make_loggers(names, out, config)
        self.step_loggers = [lg for lg in self.loggers if not isinstance(lg, CSVLogger)]
        self.out = out

    def on_step_end(self, trainer: Any, step: Any) -> None:  # noqa: D102
        if not self.step_loggers or step.global_step % STEP_LOG_EVERY:
            return
        import time

        import torch

        scalars = {
            k: float(v.detach())
            for k, v in step.outputs.items()
            if k != "logits" and torch.is_tensor(v) and v.ndim == 0
        }
        scalars["lr"] = step.lr
        scalars["images_per_s"] = trainer.epoch_seen / max(
            1e-9, time.perf_counter() - trainer.epoch_t0
        )
        for lg in self.step_loggers:
            lg.step(step.global_step, scalars)

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:  # noqa: D102
        records = trainer.records()
        for lg in self.loggers:
            lg.epoch(records)

    def on_fit_end(self, trainer: Any, summary: dict[str, Any]) -> None:  # noqa: D102
        for lg in self.loggers:
            lg.close()
        curves_plot(trainer.records(), self.out / "curves.png")
