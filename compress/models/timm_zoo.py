"""timm's classifiers as ``timm.<name>`` (optional extra: ``pip install 'compress-toolkit[timm]'``).

timm is imported only when such a name is resolved. Models are always built with
``pretrained=False``; the options that would make timm read or download weights
(``pretrained``, ``checkpoint_path``, ``pretrained_cfg``, ``pretrained_cfg_overlay``,
``cache_dir``) are refused, so a model file naming a timm architecture never touches the
network or a cached file.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from compress.errors import CompressError, UnknownNameError
from compress.models.registry import MODELS

#: timm options that load or fetch weights: never accepted.
REFUSED = ("pretrained", "checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise CompressError(
            "timm.<name> models need timm: pip install 'compress-toolkit[timm]'"
        ) from None
    return timm


def _factory(name: str):
    def factory(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> nn.Module:
        for key in REFUSED:
            if key in kwargs:
                raise ValueError(f"'{key}' cannot be set: compress builds models without weights")
        return _timm().create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs
        )

    factory.__doc__ = f"timm's {name} (random init)."
    return factory


def _pattern_factory(match: Any):
    name = match[1]
    timm = _timm()
    if name not in timm.list_models():
        from compress.registry import suggest

        raise UnknownNameError(
            f"'timm.{name}' is not a timm model.{suggest(name, timm.list_models())} "
            "See timm.list_models() for the names"
        )
    return _factory(name)


MODELS.add_pattern(r"timm\.(\w+)", _pattern_factory, example="timm.<any timm model>", source="timm")
