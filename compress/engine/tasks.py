"""What the trainer trains: a module whose ``forward(x, y)`` returns a dict of named losses."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class Task(nn.Module):
    """Base of everything the engine trains (plain supervised, every distiller).

    Subclasses set ``self.model`` (the network that is evaluated and saved) and implement
    ``forward(x, y) -> {"loss": ..., "logits": ..., <named parts>}``. The trainer backpropagates
    ``"loss"``, uses ``"logits"`` for training accuracy and logs every other scalar entry.
    Frozen submodules (teachers) are listed in `frozen` by attribute name: they stay in eval
    mode, get no gradient and are left out of checkpoints.
    """

    frozen: tuple[str, ...] = ()
    model: nn.Module
    #: optimiser steps per batch: 1, or more for a task that updates its networks in turn
    #: (`substep` gives each step's losses; DML's alternating update)
    substeps: int = 1
    #: some trainable parameters get no gradient in some steps (DDP must then look for them,
    #: which costs a pass over the graph every step)
    unused_parameters: bool = False

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser updates (everything outside the frozen modules)."""
        for name, p in self.named_parameters():
            if p.requires_grad and not self._is_frozen(name):
                yield p

    def _is_frozen(self, key: str) -> bool:
        return any(key == f or key.startswith(f + ".") for f in self.frozen)

    def train(self, mode: bool = True) -> Task:
        """Set train/eval mode; frozen submodules always stay in eval mode."""
        super().train(mode)
        for name in self.frozen:
            module = getattr(self, name, None)
            if isinstance(module, nn.Module):
                module.eval()
        return self

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The tensors a resume needs (frozen modules excluded)."""
        return {k: v for k, v in self.state_dict().items() if not self._is_frozen(k)}

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `checkpoint_state` returned."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not self._is_frozen(k)]
        if missing or unexpected:
            raise RuntimeError(
                f"checkpoint does not match the task (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Hook called before each epoch (0-based) — for loss-weight schedules and warm-ups."""

    def substep(self, index: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses of sequential update `index` of a batch (tasks with ``substeps > 1``)."""
        raise NotImplementedError

    def deployable(
        self, eval_loader: object, autocast_dtype: torch.dtype | None = None
    ) -> tuple[nn.Module, dict[str, object]]:
        """The network the trainer evaluates and saves after an epoch, and facts to log with it.

        By default `model`. A method that trains several networks (ONE's branches, a DML
        cohort) returns the one worth deploying, as a plain model, and says which.
        """
        return self.model, {}


class SupervisedTask(Task):
    """Plain cross-entropy training (the no-KD baseline and teacher training)."""

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        logits = self.model(x)
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return {"loss": ce, "logits": logits, "ce": ce.detach()}
