"""Channel-importance criteria by name (torch-pruning's estimators)."""

from __future__ import annotations

from typing import Any

from compress.registry import Registry

#: name → factory() -> torch_pruning Importance. Info: ``needs_grad`` (the criterion reads
#: gradients, so a loss must be backpropagated before each pruning step).
IMPORTANCES: Registry = Registry("importance criterion")


def _tp() -> Any:
    import torch_pruning as tp

    return tp


IMPORTANCES.add(
    "l1",
    lambda: _tp().importance.MagnitudeImportance(p=1),
    needs_grad=False,
    summary="L1 norm of each channel's weights",
)
IMPORTANCES.add(
    "l2",
    lambda: _tp().importance.MagnitudeImportance(p=2),
    needs_grad=False,
    summary="L2 norm of each channel's weights",
)
IMPORTANCES.add(
    "taylor",
    lambda: _tp().importance.TaylorImportance(),
    needs_grad=True,
    summary="first-order Taylor estimate |w·∂L/∂w| (needs a few batches of data)",
)
IMPORTANCES.add(
    "bn_scale",
    lambda: _tp().importance.BNScaleImportance(),
    needs_grad=False,
    summary="|γ| of the BatchNorm after each conv (Network Slimming)",
)
IMPORTANCES.add(
    "lamp",
    lambda: _tp().importance.LAMPImportance(p=2),
    needs_grad=False,
    summary="layer-adaptive magnitude (LAMP) scores",
)
IMPORTANCES.add(
    "random",
    lambda: _tp().importance.RandomImportance(),
    needs_grad=False,
    summary="uniformly random (a baseline)",
)


def build_importance(name: str) -> Any:
    """The torch-pruning importance object for `name` (unknown names get a suggestion)."""
    return IMPORTANCES.get(name)()
