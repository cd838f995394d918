"""The model zoo: CIFAR-style networks used by every KD paper, plus torchvision's classifiers."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from compress.errors import CompressError
from compress.header import ModelHeader
from compress.models import (  # noqa: F401  (registration)
    mobilenetv2,
    resnet,
    shufflenet,
    timm_zoo,
    torchvision_zoo,
    vgg,
    wrn,
)
from compress.models.features import FeatureHooks
from compress.models.registry import MODELS

__all__ = ["MODELS", "FeatureHooks", "count_params", "create_model", "list_models", "model_info"]


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """Build a registered model with random weights.

    Args:
        name: registry name, e.g. ``"resnet8x4"``, ``"wrn_40_2"``, ``"resnet18"``.
        num_classes: size of the classifier output.
        in_channels: image channels (1 for grayscale).
        **kwargs: architecture options (e.g. ``width_mult`` for ``mobilenetv2``).

    Returns:
        The model; it records how it was built (``model.compress_header``) so that
        `compress.save_model` can write a self-describing file.

    Raises:
        UnknownNameError: for an unknown name (with a suggestion).
        CompressError: for an option the architecture does not take or rejects.
    """
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        valid = [p for p in params if p not in ("num_classes", "in_channels")]
        raise CompressError(
            f"model '{name}' takes no option {unknown[0]!r}; its options: {', '.join(valid) or 'none'}"
        )
    if num_classes < 1 or in_channels < 1:
        raise CompressError(
            f"num_classes and in_channels must be ≥ 1, got {num_classes}, {in_channels}"
        )
    try:
        model = factory(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        raise CompressError(f"cannot build model '{name}': {exc}") from None
    model.compress_header = ModelHeader.from_dict(  # type: ignore[assignment]
        {
            "arch": {
                "name": name,
                "kwargs": {"num_classes": num_classes, "in_channels": in_channels, **kwargs},
            },
            "num_classes": num_classes,
            "in_channels": in_channels,
        },
        source=f"model '{name}'",
    )
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a substring or ``fnmatch`` pattern."""
    import fnmatch

    names = MODELS.names()
    if not pattern:
        return names
    if any(ch in pattern for ch in "*?["):
        return [n for n in names if fnmatch.fnmatch(n, pattern)]
    return [n for n in names if pattern in n]


def model_info(name: str) -> dict[str, Any]:
    """Registration info of a model: family, stage module names, embedding module, source."""
    return MODELS.info(name)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
