"""Knowledge distillation: pure losses, teacher preparation, one method per file.

Names are imported lazily so that reading `DistillConfig` does not import torch.
"""

from __future__ import annotations

from compress._lazy import lazy_getattr, make_callable

_LAZY = {
    "DistillConfig": "compress.distill.config",
    "distill": "compress.distill.api",
    "list_methods": "compress.distill.methods",
    "Distiller": "compress.distill.base",
    "METHODS": "compress.distill.methods",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)


# `compress.distill(...)` is the notebook API's verb, although this is also a module
make_callable(__name__, "compress.api", "distill")
