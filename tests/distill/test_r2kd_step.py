"""R2KD's step does less work and the same maths: both views through the frozen networks at once."""

from __future__ import annotations

import pytest
import torch

import compress
from compress.config import build
from compress.distill.base import DistillContext
from compress.distill.config import DistillConfig
from compress.distill.methods import METHODS


class _Info:
    name, num_classes, in_channels, input_size = "x", 10, 3, (32, 32)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.mark.parametrize("preset", [None, "faithful"])
def test_one_batch_through_the_frozen_networks_gives_each_views_target(preset):
    torch.manual_seed(0)
    student = compress.create_model("resnet8", num_classes=10)
    teacher = compress.create_model("resnet14", num_classes=10).eval()
    ctx = DistillContext(info=_Info(), device=torch.device("cpu"), log=lambda _m: None)
    cfg = build(DistillConfig, {"method": "r2kd", "preset": preset})
    task = METHODS.get("r2kd").build(student, teacher, cfg.settings(), ctx).train()
    x, xa = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    z, za = task.targets(x, xa)
    assert torch.allclose(z, task.target(x), atol=1e-5)
    assert torch.allclose(za, task.target(xa), atol=1e-5)
    assert not z.is_inference()  # usable in the loss's backward
    out = task(x, torch.arange(8))
    out["loss"].backward()
    assert student.fc.weight.grad is not None
