"""Structured pruning over torch-pruning, its replayable history, and magnitude masking.

Names are imported lazily: `PruneSettings` can be read without importing torch.
"""

from __future__ import annotations

from compress._lazy import lazy_getattr, make_callable

_LAZY = {
    "IMPORTANCES": "compress.prune.importance",
    "build_importance": "compress.prune.importance",
    "PruneSettings": "compress.prune.settings",
    "ChannelPruner": "compress.prune.structured",
    "append_record": "compress.prune.structured",
    "check_prunable": "compress.prune.structured",
    "classifier_module": "compress.prune.structured",
    "magnitude_mask_": "compress.prune.structured",
    "prune_channels": "compress.prune.structured",
    "replay_history": "compress.prune.structured",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)


# `compress.prune(...)` is the notebook API's verb, although this is also a module
make_callable(__name__, "compress.api", "prune")
