from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.distill.teachers import (
    TeacherPruning,
    blend_logits,
    make_pruned_copy,
    use_batch_statistics,
)
from compress.errors import CompressError
from compress.models import count_params, create_model


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name", ["resnet8x4", "wrn_16_2", "vgg8"])
def test_structured_copy_is_smaller_rounded_and_leaves_teacher_alone(name):
    teacher = create_model(name, num_classes=10).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    settings = TeacherPruning(mode="structured", ratio=0.3, round_to=8)
    pruned, facts = make_pruned_copy(teacher, settings, (3, 32, 32))
    assert facts["mode"] == "structured" and facts["ratio"] == 0.3
    assert count_params(pruned) < count_params(teacher)
    assert all(c.out_channels % 8 == 0 for c in _convs(pruned))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(p.requires_grad for p in pruned.parameters())


def test_unstructured_zeroes_the_fraction_of_every_layer():
    teacher = create_model("resnet8", num_classes=10)
    pruned, facts = make_pruned_copy(
        teacher, TeacherPruning(mode="unstructured", ratio=0.25), (3, 32, 32)
    )
    for m in pruned.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            n = m.weight.numel()
            assert int((m.weight == 0).sum()) == round(0.25 * n)
    assert count_params(pruned) == count_params(teacher)  # shapes unchanged
    assert facts["zero_fraction"] == pytest.approx(0.25, abs=0.01)


def test_structured_refuses_shufflenet_with_a_hint():
    with pytest.raises(CompressError, match="unstructured"):
        make_pruned_copy(create_model("shufflenetv2"), TeacherPruning(), (3, 32, 32))


def test_blend_and_batch_statistics():
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    assert torch.allclose(blend_logits(a, b, 0.7), torch.full((2, 3), 0.7))
    model = create_model("resnet8").eval()
    running = model.bn1.running_mean.clone()
    use_batch_statistics(model)
    assert model.bn1.training
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert torch.equal(model.bn1.running_mean, running)  # batch stats used, running stats kept
