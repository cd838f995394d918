"""Parameter and MAC counts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on a single input of shape (C, H, W).

    Counted by torch-pruning's op counter, the same one the pruner reports.
    """
    import torch_pruning as tp

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = torch.zeros(1, *input_shape, device=device)
    was_training = model.training
    model.eval()
    try:
        macs, _ = tp.utils.count_ops_and_params(model, example)
    finally:
        model.train(was_training)
    return int(macs)
