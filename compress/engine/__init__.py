"""Training engine: one loop over a task that returns a dict of losses.

Names are imported lazily so that reading settings (``compress.engine.settings``) does not
import torch.
"""

from __future__ import annotations

from compress._lazy import lazy_getattr

_LAZY = {
    "resolve_device": "compress.engine.device",
    "evaluate": "compress.engine.metrics",
    "topk_correct": "compress.engine.metrics",
    "OptimSettings": "compress.engine.settings",
    "ScheduleSettings": "compress.engine.settings",
    "TrainSettings": "compress.engine.settings",
    "SupervisedTask": "compress.engine.tasks",
    "Task": "compress.engine.tasks",
    "fit": "compress.engine.trainer",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
