"""Lazy attribute access for package ``__init__`` modules (keeps ``compress --help`` torch-free)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` on first access of `name`."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class _CallableModule(types.ModuleType):
    """A module that can also be called: ``compress.train(...)`` while ``compress.train`` is a module."""

    __compress_call__: tuple[str, str]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, name = self.__compress_call__
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        """The verb's keywords (its config's keys with their defaults), for help and completion."""
        module, name = self.__compress_call__
        return importlib.import_module(module).signature(name)


def make_callable(module_name: str, target: str, name: str) -> None:
    """Make the module `module_name` callable as ``target.name`` (the notebook API's verbs).

    ``compress.train``, ``compress.distill`` and ``compress.prune`` are also modules of the
    package; importing them replaces the package attribute of that name, so the module itself
    must be the callable the notebook API promises.
    """
    module = sys.modules[module_name]
    module.__class__ = _CallableModule
    module.__compress_call__ = (target, name)  # type: ignore[attr-defined]
    own = module.__doc__ or ""
    module.__doc__ = (
        f"compress.{name}(options=None, /, **keys) — the notebook verb (compress.api.{name}): "
        f"every key of its config is a keyword; inspect.signature(compress.{name}) lists them "
        f"with their defaults.\n\nThe module: {own}"
    )
