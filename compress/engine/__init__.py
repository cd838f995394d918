"""Training engine: one loop over a task that returns a dict of losses.

Names are imported lazily so that reading settings (``compress.engine.settings``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compress.engine' has no attribute {name!r}")
