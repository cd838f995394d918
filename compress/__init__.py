"""compress: distil, prune, export and profile compact image classifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compress._lazy import lazy_getattr
from compress._version import __version__

__all__ = ["__version__", "create_model", "list_models", "load_model", "save_model"]

if TYPE_CHECKING:  # pragma: no cover
    from compress.artifacts import load_model, save_model
    from compress.models import create_model, list_models

# The public API is resolved lazily so that `import compress` (and `compress --help`) does not
# import torch.
_LAZY = {
    "create_model": "compress.models",
    "list_models": "compress.models",
    "load_model": "compress.artifacts",
    "save_model": "compress.artifacts",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
