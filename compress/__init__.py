"""compress: distil, prune, export and profile compact image classifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compress._lazy import lazy_getattr
from compress._version import __version__

__all__ = [
    "__version__",
    "benchmark",
    "create_model",
    "distill",
    "export",
    "list_models",
    "load_model",
    "prune",
    "quantize",
    "save_model",
    "train",
]

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
    # the notebook API (compress.api); train / distill / prune are callable modules as well
    "train": "compress.train",
    "distill": "compress.distill",
    "prune": "compress.prune",
    "export": "compress.api",
    "benchmark": "compress.api",
    "quantize": "compress.api",
}


def __getattr__(name: str):
    if name in ("train", "distill", "prune", "quantize"):
        import importlib

        return importlib.import_module(f"compress.{name}")  # a callable module (compress.api)
    return _lookup(name)


_lookup = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
