"""Intermediate features by forward hooks on named modules, so any `nn.Module` works unchanged."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from compress.errors import CompressError
from compress.registry import suggest


class FeatureHooks:
    """Capture the outputs (or, with ``inputs=True``, the first inputs) of named submodules.

    Use as a context manager or call `remove()`; features of the latest forward pass are in
    `features` keyed by module name. Gradients flow through the captured tensors.

    Example:
        >>> hooks = FeatureHooks(model, ["layer1", "layer3"])
        >>> logits = model(x)
        >>> hooks.features["layer3"].shape
    """

    def __init__(self, model: nn.Module, names: Iterable[str], *, inputs: bool = False) -> None:
        self.features: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._handles = []
        for name in names:
            if name not in modules:
                valid = [n for n in modules if n]
                raise CompressError(
                    f"model has no module '{name}'.{suggest(name, valid)} "
                    f"Top-level modules: {', '.join(n for n in valid if '.' not in n)}"
                )
            module = modules[name]
            if inputs:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            else:
                self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> None:
            self.features[name] = out

        return hook

    def _pre_hook(self, name: str):
        def hook(_module: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
            self.features[name] = inp[0]

        return hook

    def remove(self) -> None:
        """Detach all hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
