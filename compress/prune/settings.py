"""Typed settings of channel pruning (no torch import, so the CLI can read them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field

from compress.prune.importance import IMPORTANCES


@dataclass
class PruneSettings:
    """How to prune channels.

    Attributes:
        ratio: fraction of channels removed from each prunable layer (or overall with
            ``global_pruning``), in (0, 1).
        importance: ``l1``, ``l2``, ``taylor``, ``bn_scale``, ``lamp`` or ``random``.
        global_pruning: rank channels across all layers instead of per layer.
        round_to: keep channel counts multiples of this (TensorRT pads to 8); ``null`` = exact.
        steps: prune in this many equal steps (fine-tuning may run in between).
        max_layer_ratio: never remove more than this fraction of one layer (global pruning).
        ignore: module names never pruned, besides the classifier.
    """

    ratio: float = 0.5
    importance: str = "l1"
    global_pruning: bool = False
    round_to: int | None = 8
    steps: int = 1
    max_layer_ratio: float = 0.9
    ignore: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {self.ratio}")
        if self.importance not in IMPORTANCES:
            raise ValueError(IMPORTANCES.unknown_message(self.importance))
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if self.round_to is not None and self.round_to < 1:
            raise ValueError(f"round_to must be ≥ 1 or null, got {self.round_to}")
