"""Progress of a run, everywhere it may be watched: a terminal, a notebook, a log file or CI.

One `ProgressCallback` for every verb that trains:

* on a terminal, a live rich bar per epoch;
* in Jupyter, the same bar when ``ipywidgets`` is installed (rich draws it with widgets), else
  plain lines (no warning, no silence);
* anywhere else (a pipe, a file, CI), a plain line at a steady cadence: every ~10 % of an epoch
  or every 30 s, whichever comes first, with step, loss, images/s and the epoch's ETA.

After the first steps of a run one line estimates the whole run's time, and every epoch ends
with one summary line (`epoch_line`), printed by the trainer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from compress.engine.callbacks import Callback, Step

if TYPE_CHECKING:  # pragma: no cover
    from compress.engine.trainer import Trainer

#: Plain progress lines: at most every this many seconds, and at least every 10 % of an epoch.
PLAIN_EVERY_S = 30.0
PLAIN_SHARE = 0.1
#: The run's time is estimated once this many steps (or seconds) have run.
ESTIMATE_AFTER_STEPS = 20
ESTIMATE_AFTER_S = 5.0


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except AttributeError:
        return False


def _has_widgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def display_mode(enabled: bool = True) -> str:
    """``bar`` (a live bar), ``plain`` (lines at a cadence) or ``off``."""
    if not enabled:
        return "off"
    if sys.stdout.isatty():
        return "bar"
    if in_notebook():
        return "bar" if _has_widgets() else "plain"
    return "plain"


def _eta(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


class ProgressCallback(Callback):
    """The live bar or the plain lines of every epoch, and an estimate of the run's time."""

    def __init__(self, enabled: bool = True, log: Callable[[str], None] = print) -> None:
        self.mode = display_mode(enabled)
        self.log = log
        self._bar: Any = None
        self._task: Any = None
        self._estimated = False

    def on_fit_start(self, trainer: Trainer) -> None:  # noqa: D102
        self._fit_t0 = time.perf_counter()
        self._fit_steps = 0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        self._t0 = self._last_line = time.perf_counter()
        self._last_index = -1
        if self.mode != "bar":
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn(f"epoch {epoch + 1}/{trainer.settings.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=trainer.steps_per_epoch, info="")

    def on_step_end(self, trainer: Trainer, step: Step) -> None:  # noqa: D102
        self._fit_steps += 1
        if self.mode == "off":
            return
        now = time.perf_counter()
        steps = trainer.steps_per_epoch
        if not self._estimated:
            self._estimate(trainer, now)
        last = step.index + 1 == steps
        if self.mode == "bar":
            if step.index % 10 == 0 or last:
                self._bar.update(self._task, completed=step.index + 1, info=self._info(trainer))
            return
        due = (step.index + 1) - (self._last_index + 1) >= max(1, round(PLAIN_SHARE * steps))
        if (due or now - self._last_line >= PLAIN_EVERY_S) and not last:
            rate = trainer.epoch_seen / max(1e-9, now - self._t0)
            left = (steps - step.index - 1) * (now - self._t0) / (step.index + 1)
            self.log(
                f"  epoch {step.epoch + 1}/{trainer.settings.epochs} step {step.index + 1}/{steps}"
                f"  {self._info(trainer)}  (epoch ETA {_eta(left)}, {rate:.0f} img/s)"
            )
            self._last_line, self._last_index = now, step.index

    def _estimate(self, trainer: Trainer, now: float) -> None:
        spent = now - self._fit_t0
        if self._fit_steps < ESTIMATE_AFTER_STEPS and spent < ESTIMATE_AFTER_S:
            return
        self._estimated = True
        epochs_left = trainer.settings.epochs - trainer.start_epoch
        total = spent / self._fit_steps * trainer.steps_per_epoch * epochs_left
        self.log(
            f"about {_eta(total)} of training for {epochs_left} epoch(s) at this pace "
            "(evaluation after each epoch not included)"
        )

    @staticmethod
    def _info(trainer: Trainer) -> str:
        seen = max(1, trainer.epoch_seen)
        loss = float(trainer.epoch_sums.get("loss", 0.0)) / seen
        acc = 100 * float(trainer.epoch_correct) / seen
        return f"loss {loss:.4f}  acc {acc:.1f}%"

    def on_batches_end(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """The one-line summary printed after each epoch."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}"]
    if record.get("train_top1") is not None:
        parts.append(f"train {100 * record['train_top1']:.2f}%")
    parts.append(f"test {100 * record['top1']:.2f}% (best {100 * record['best_top1']:.2f}%)")
    parts.append(f"lr {record['lr']:.4g}")
    parts.append(f"{record['images_per_s']:.0f} img/s")
    return "  ".join(parts)
