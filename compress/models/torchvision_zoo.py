"""torchvision's ImageNet classifiers by name (random init: nothing is ever downloaded).

A curated set is registered under torchvision's own names (``resnet18``, ``mobilenet_v2``, ...);
any other torchvision *classification* model is reachable as ``torchvision.<name>``. Detection,
segmentation and video builders are refused: they download backbone weights by default, and a
model file must never make compress touch the network or a cached pickle. Every model is built
with ``weights=None`` (and no backbone weights). ``in_channels`` other than 3 replaces the
first convolution.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from compress.models.registry import MODELS

_RESNET = {
    "family": "resnet",
    "stages": ("layer1", "layer2", "layer3", "layer4"),
    "embedding": "fc",
}
_CURATED: dict[str, dict[str, Any]] = {
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _RESNET,
    "resnet101": _RESNET,
    "resnet152": _RESNET,
    "wide_resnet50_2": _RESNET,
    "resnext50_32x4d": _RESNET,
    # stages: the last block at each resolution (/4, /8, /16, /32 of the input)
    "mobilenet_v2": {
        "family": "mobilenet",
        "stages": ("features.3", "features.6", "features.13", "features.18"),
        "embedding": "classifier.1",
    },
    "mobilenet_v3_small": {
        "family": "mobilenet",
        "stages": ("features.1", "features.3", "features.8", "features.12"),
        "embedding": "classifier.3",
    },
    "mobilenet_v3_large": {
        "family": "mobilenet",
        "stages": ("features.3", "features.6", "features.12", "features.16"),
        "embedding": "classifier.3",
    },
    "shufflenet_v2_x0_5": {
        "family": "shufflenet",
        "stages": ("stage2", "stage3", "stage4"),
        "embedding": "fc",
    },
    "shufflenet_v2_x1_0": {
        "family": "shufflenet",
        "stages": ("stage2", "stage3", "stage4"),
        "embedding": "fc",
    },
    "efficientnet_b0": {"family": "efficientnet", "embedding": "classifier.1"},
    "regnet_y_400mf": {"family": "regnet", "embedding": "fc"},
}


def replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the model's first Conv2d for one taking `in_channels` inputs (same other settings)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(
                    in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups if child.groups == 1 else in_channels,
                    child.bias is not None,
                    child.padding_mode,
                )
                setattr(parent, name, new)
                return
    raise ValueError("model has no Conv2d to adapt to in_channels")


def classification_models() -> list[str]:
    """Torchvision's classification builders (its ``torchvision.models`` namespace only)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _factory(tv_name: str):
    def factory(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        import torchvision

        for key in ("weights", "weights_backbone", "progress"):
            if key in kwargs:
                raise ValueError(f"'{key}' cannot be set: compress builds models without weights")
        model = torchvision.models.get_model(
            tv_name, weights=None, num_classes=num_classes, **kwargs
        )
        if in_channels != 3:
            replace_first_conv(model, in_channels)
        return model

    factory.__doc__ = f"torchvision's {tv_name} (ImageNet layout, random init)."
    return factory


for _name, _info in _CURATED.items():
    MODELS.add(_name, _factory(_name), source="torchvision", **_info)


def _pattern_factory(match: Any):
    name = match[1]
    if name not in classification_models():
        from compress.errors import UnknownNameError
        from compress.registry import suggest

        raise UnknownNameError(
            f"'torchvision.{name}' is not a torchvision classification model.{suggest(name, classification_models())} "
            "compress builds image classifiers only (see torchvision.models.list_models())"
        )
    return _factory(name)


MODELS.add_pattern(
    r"torchvision\.(\w+)",
    _pattern_factory,
    example="torchvision.<any torchvision classifier>",
    source="torchvision",
)
