"""Replay a recorded torch-pruning history on a fresh model (how a pruned model file is rebuilt).

It lives with the models, below `compress.artifacts`, so loading a model file never reaches up
into the pruning verb; `compress.prune` records the histories this replays.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


def replay_history(model: nn.Module, pruning: dict[str, Any]) -> None:
    """Rebuild a pruned architecture on a fresh `model` by replaying every recorded round."""
    import torch_pruning as tp

    for record in pruning.get("rounds", []):
        example = torch.zeros(1, *record["input_shape"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tp.DependencyGraph().build_dependency(model, example, verbose=False)
            graph.load_pruning_history(record["history"])
