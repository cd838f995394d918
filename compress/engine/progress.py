"""Progress display: a live bar on a terminal, one line per epoch everywhere."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """A rich progress bar for the batches of each epoch (on a terminal or in a notebook)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and (sys.stdout.isatty() or in_notebook())
        self._bar: Any = None
        self._task: Any = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        """Begin the bar of one epoch."""
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=steps, info="")

    def update(self, done: int, info: str) -> None:
        """Advance the bar to `done` steps with a status text."""
        if self._bar is not None:
            self._bar.update(self._task, completed=done, info=info)

    def end_epoch(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (rich renders its bars there as widgets)."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except AttributeError:
        return False


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """The one-line summary printed after each epoch."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}"]
    if record.get("train_top1") is not None:
        parts.append(f"train {100 * record['train_top1']:.2f}%")
    parts.append(f"test {100 * record['top1']:.2f}% (best {100 * record['best_top1']:.2f}%)")
    parts.append(f"lr {record['lr']:.4g}")
    parts.append(f"{record['images_per_s']:.0f} img/s")
    return "  ".join(parts)
