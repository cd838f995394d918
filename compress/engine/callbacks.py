"""Hooks into the one training loop, in the manner of Lightning's and Ultralytics' callback lists.

The loop (`compress.engine.trainer.Trainer`) calls every callback at fixed points; loggers, the
progress display, the divergence guard and quantization-aware training are callbacks, not
branches of the loop. A callback sees the loop's state through the `Trainer` it is given and may
add entries to the checkpoint (``on_checkpoint``) and read them back (``on_resume``).

Order of calls::

    on_fit_start
    on_resume                      (only when resuming: the loaded state.pt)
    for each epoch:
        on_epoch_start
        for each batch: on_before_step (before the forward) → on_loss (each update's loss,
                        before its backward) → on_step_end (after the update)
        on_batches_end             (the epoch's batches are done, before evaluation)
        on_epoch_end               (with the epoch's record, after evaluation)
        on_checkpoint              (the state about to be saved, main process only)
    on_fit_end                     (with the summary)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from compress.engine.trainer import Trainer


@dataclass
class Step:
    """What one optimiser step did.

    Attributes:
        epoch: 0-based epoch.
        index: 0-based batch index in the epoch.
        global_step: steps done so far, this one included.
        outputs: the task's output dict of the step (``loss``, ``logits``, named parts).
        batch_size: images in the batch.
        lr: the learning rate the step used.
    """

    epoch: int
    index: int
    global_step: int
    outputs: dict[str, torch.Tensor]
    batch_size: int
    lr: float


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after the optimiser exists, before any resume)."""

    def on_resume(self, trainer: Trainer, state: dict[str, Any]) -> None:
        """A resume loaded `state` (``state.pt``); read back what `on_checkpoint` added."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the batches of 0-based `epoch`."""

    def on_before_step(self, trainer: Trainer, epoch: int, index: int) -> None:
        """Before the forward pass of batch `index`."""

    def on_loss(self, trainer: Trainer, loss: torch.Tensor, epoch: int, index: int) -> None:
        """The loss of one update, before its backward (raise to stop before it is applied)."""

    def on_step_end(self, trainer: Trainer, step: Step) -> None:
        """After the optimiser step (and the scheduler's)."""

    def on_batches_end(self, trainer: Trainer, epoch: int) -> None:
        """The epoch's batches are done; the model is evaluated and saved next."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After the epoch's evaluation; `record` is its ``metrics.jsonl`` line."""

    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:
        """`state` is about to be written to ``state.pt``; add entries under your own key."""

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """After the last epoch, with the summary about to be written."""


class CallbackList(Callback):
    """Calls every callback in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Trainer) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_fit_start(trainer)

    def on_resume(self, trainer: Trainer, state: dict[str, Any]) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_resume(trainer, state)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_epoch_start(trainer, epoch)

    def on_before_step(self, trainer: Trainer, epoch: int, index: int) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_before_step(trainer, epoch, index)

    def on_loss(self, trainer: Trainer, loss: torch.Tensor, epoch: int, index: int) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_loss(trainer, loss, epoch, index)

    def on_step_end(self, trainer: Trainer, step: Step) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_step_end(trainer, step)

    def on_batches_end(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_batches_end(trainer, epoch)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, record)

    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_checkpoint(trainer, state)

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:  # noqa: D102
        for cb in self.callbacks:
            cb.on_fit_end(trainer, summary)
