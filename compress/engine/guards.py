"""The divergence guard: a NaN or infinite loss stops the run, the last good checkpoint kept."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from compress.engine.callbacks import Callback
from compress.errors import TrainingDivergedError

if TYPE_CHECKING:  # pragma: no cover
    from compress.engine.trainer import Trainer

#: On a GPU the loss is checked every this many steps (each check is a host sync).
CHECK_EVERY = 50


class DivergenceGuard(Callback):
    """Stop at the first non-finite loss, saying which epoch and step.

    On the CPU each loss is checked before its backward (the bad update never happens). On a
    GPU the first bad step is remembered on the device and read every `CHECK_EVERY` steps and
    at the end of the epoch, so the guard costs no host sync per step.
    """

    def __init__(self) -> None:
        self.first_bad: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        self.first_bad = torch.full((), -1, dtype=torch.long, device=trainer.device)

    def on_loss(self, trainer: Trainer, loss: torch.Tensor, epoch: int, index: int) -> None:  # noqa: D102
        self.loss = loss
        finite = torch.isfinite(loss.detach())
        if trainer.device.type == "cpu":
            if not bool(finite):
                self._stop(trainer, epoch, index, loss)
            return
        here = torch.full((), index, dtype=torch.long, device=trainer.device)
        self.first_bad = torch.where((~finite) & (self.first_bad < 0), here, self.first_bad)

    def on_step_end(self, trainer: Trainer, step: Any) -> None:  # noqa: D102
        if trainer.device.type != "cpu" and (step.index + 1) % CHECK_EVERY == 0:
            self._check(trainer, step.epoch)

    def on_batches_end(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        if trainer.device.type != "cpu":
            self._check(trainer, epoch)

    def _check(self, trainer: Trainer, epoch: int) -> None:
        if self.first_bad is not None and int(self.first_bad) >= 0:
            self._stop(trainer, epoch, int(self.first_bad), self.loss)

    def _stop(self, trainer: Trainer, epoch: int, index: int, loss: Any) -> None:
        value = "nan" if loss is not None and math.isnan(float(loss.detach())) else "inf"
        saved = trainer.start_epoch > 0 or epoch > 0
        kept = (
            f"kept the last good checkpoint in {trainer.out} (last.safetensors, state.pt)"
            if saved
            else "no checkpoint had been written yet"
        )
        raise TrainingDivergedError(
            f"the loss became {value} at epoch {epoch + 1}, step {index + 1}/"
            f"{trainer.steps_per_epoch}; training stopped and {kept}; lower the learning rate "
            "or enable grad_clip"
        )
