"""Knowledge distillation: pure losses, teacher preparation, one method per file.

Names are imported lazily so that reading `DistillConfig` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DistillConfig": "compress.distill.config",
    "distill": "compress.distill.api",
    "list_methods": "compress.distill.api",
    "Distiller": "compress.distill.base",
    "METHODS": "compress.distill.api",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compress.distill' has no attribute {name!r}")
