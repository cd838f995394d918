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


def _digits(device="cpu"):
    from compress.data import DataSettings, build_loaders, holdout_loader, load_data

    settings = DataSettings(name="digits", batch_size=32)
    data = load_data(settings)
    train, test = build_loaders(data, settings, device=device)
    return data, settings, train, test, lambda n: holdout_loader(data, settings, n)


def test_structured_copy_at_ratio_0_1_stays_near_the_teacher(digits_model):
    """Recalibrated BatchNorm keeps the structured copy slightly worse, not broken (it was 35 %)."""
    from compress.artifacts import load_model
    from compress.distill.teachers import prepare_pruned_copy, top1_in_mode

    teacher = load_model(digits_model)
    _, _, train, test, _ = _digits()
    base = top1_in_mode(teacher, test, "eval")
    for bn in ("eval", "batch"):
        pruned, facts = prepare_pruned_copy(
            teacher,
            TeacherPruning(ratio=0.1, bn=bn),
            (1, 8, 8),
            train_batches=train,
            eval_loader=test,
        )
        assert facts["bn"] == bn and base - facts["top1"] < 0.05, (bn, base, facts["top1"])
        assert 0.05 < facts["weights_removed"] < 0.35 and facts["params"] < count_params(teacher)
    assert facts["top1_eval_bn"] == top1_in_mode(pruned, test, "eval")  # both modes reported
    _, facts = prepare_pruned_copy(
        teacher, TeacherPruning(ratio=0.1, recalibrate=0), (1, 8, 8), eval_loader=test
    )
    assert facts["recalibrated_images"] == 0


def test_target_drop_lands_near_its_target_on_held_out_training_images(digits_model):
    from compress.artifacts import load_model
    from compress.distill.teachers import prepare_pruned_copy, top1_in_mode

    teacher = load_model(digits_model)
    _, _, train, test, holdout = _digits()
    for target in (0.03, 0.08):
        pruned, facts = prepare_pruned_copy(
            teacher,
            TeacherPruning(target_drop=target, holdout=500),
            (1, 8, 8),
            train_batches=train,
            eval_loader=test,
            holdout=holdout,
        )
        search = facts["search"]
        held = holdout(500)
        drop = search["teacher_top1_holdout"] - top1_in_mode(pruned, held, "eval")
        trials = search["trials"]
        if abs(drop - target) > 0.015:
            # the drop is a step function of the ratio (whole channels go), and its steps sit
            # elsewhere on another CPU's numerics: then the bisection must have closed in on a
            # jump over the target, between two ratios less than 1 % apart
            below = [t["ratio"] for t in trials if t["drop"] <= target]
            above = [t["ratio"] for t in trials if t["drop"] > target]
            assert below and above and min(above) - max(below) < 0.01, (target, drop, trials)
        closest = min(abs(t["drop"] - target) for t in search["trials"])
        assert any(
            t["ratio"] == facts["ratio"] and abs(t["drop"] - target) == closest
            for t in search["trials"]
        )


def test_holdout_is_training_data_never_the_test_split():
    data, _, _, _, holdout = _digits()
    x, _ = next(iter(holdout(100)))
    assert len(x) == 100
    train_rows = {tuple(r) for r in data.train_x.flatten(1).tolist()}
    from compress.data.loader import Normalizer

    norm = Normalizer(data.info.mean, data.info.std)
    raw = torch.round((x * norm.scale.reciprocal()) + data.info.mean[0] * 255).clamp(0, 255)
    assert all(tuple(int(v) for v in r) in train_rows for r in raw.flatten(1).tolist())


def test_cutmixpick_keeps_the_highest_entropy_samples():
    from compress.data.augment import entropy_pick

    x = torch.arange(6.0).view(6, 1, 1, 1)
    logits = torch.tensor(
        [[9.0, 0, 0], [1.0, 1, 1], [5.0, 0, 0], [0.5, 0.4, 0.6], [20.0, 0, 0], [2.0, 1, 0]]
    )
    kept = entropy_pick(x, logits, 3)
    assert sorted(kept.flatten().tolist()) == [1.0, 3.0, 5.0]  # near-uniform rows: most uncertain
    assert entropy_pick(x, logits, 64).shape[0] == 6  # the released code: min(batch, 64)
