from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import compress
from compress.errors import CompressError
from compress.models import count_params, create_model, list_models, model_info
from compress.prune import IMPORTANCES, PruneSettings, append_record, prune_channels
from compress.prune.api import search_ratio
from compress.prune.structured import UNSUPPORTED_FAMILIES
from tests.conftest import reloads_identically

ALL = list_models()


def _convs(model):
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("name", ALL)
def test_every_zoo_model_prunes_or_gets_a_clear_error(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    if model_info(name).get("family") in UNSUPPORTED_FAMILIES:
        with pytest.raises(CompressError, match="cannot be pruned structurally"):
            prune_channels(model, (3, 32, 32), PruneSettings(ratio=0.5))
        return
    before, params = _convs(model), count_params(model)
    prune_channels(model, (3, 32, 32), PruneSettings(ratio=0.5, round_to=8))
    after = _convs(model)
    assert count_params(model) < params
    changed = {n: c for n, c in after.items() if c != before[n]}
    assert changed, "nothing was pruned"
    assert all(c % 8 == 0 for c in changed.values()), changed
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_save_load_round_trip_is_identical_in_a_fresh_process(tmp_path):
    model = create_model("resnet8x4", num_classes=10, in_channels=1).eval()
    record = prune_channels(model, (1, 28, 28), PruneSettings(ratio=0.5))
    path = compress.save_model(
        model, tmp_path / "p.safetensors", input_size=[28, 28], pruning=append_record(None, record)
    )
    x = torch.randn(3, 1, 28, 28)
    loaded = compress.load_model(path)
    assert torch.equal(loaded(x), model(x))
    assert reloads_identically(path, x, model(x))


def test_pruning_a_pruned_model_replays_both_rounds(tmp_path):
    model = create_model("resnet20", num_classes=10).eval()
    for ratio in (0.3, 0.3):
        record = prune_channels(model, (3, 32, 32), PruneSettings(ratio=ratio))
        model.compress_header = model.compress_header.replace(
            pruning=append_record(model.compress_header.pruning, record)
        )
    path = compress.save_model(model, tmp_path / "p.safetensors")
    loaded = compress.load_model(path)
    x = torch.randn(2, 3, 32, 32)
    assert len(loaded.compress_header.pruning["rounds"]) == 2
    assert torch.equal(loaded(x), model(x))


def test_iterative_schedule_reaches_its_target():
    one_shot = create_model("resnet20", num_classes=10).eval()
    prune_channels(one_shot, (3, 32, 32), PruneSettings(ratio=0.5, round_to=None))
    model = create_model("resnet20", num_classes=10).eval()
    sizes = []
    prune_channels(
        model,
        (3, 32, 32),
        PruneSettings(ratio=0.5, steps=3, round_to=None),
        between_steps=lambda step, rec: sizes.append(count_params(model)),
    )
    sizes.append(count_params(model))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert count_params(model) == pytest.approx(count_params(one_shot), rel=0.05)


def test_target_macs_search_hits_the_target():
    from compress.models.stats import count_macs

    model = create_model("resnet8x4", num_classes=10).eval()
    base = count_macs(model, (3, 32, 32))
    ratio, share = search_ratio(
        model, (3, 32, 32), PruneSettings(round_to=None), target=0.4, metric="macs"
    )
    prune_channels(model, (3, 32, 32), PruneSettings(ratio=ratio, round_to=None))
    assert count_macs(model, (3, 32, 32)) / base == pytest.approx(share, abs=1e-9)
    assert share == pytest.approx(0.4, abs=0.03)


@pytest.mark.parametrize("importance", IMPORTANCES.names())
def test_every_importance_criterion_prunes(importance):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def grad_fn(m):
        torch.nn.functional.cross_entropy(m(x), y).backward()

    params = count_params(model)
    prune_channels(
        model, (3, 32, 32), PruneSettings(ratio=0.5, importance=importance), grad_fn=grad_fn
    )
    assert count_params(model) < params


@pytest.mark.parametrize("importance", ["l1", "taylor"])
def test_a_frozen_model_prunes_as_a_trainable_one_and_stays_frozen(importance):
    # a teacher already used for distillation is frozen; torch-pruning traces autograd, so
    # before the fix its structured copy lost no channel the second time round
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10).eval()
    model.conv1.weight.requires_grad_(False)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def grad_fn(m):
        torch.nn.functional.cross_entropy(m(x), y).backward()

    trainable, frozen = copy.deepcopy(model), copy.deepcopy(model).requires_grad_(False)
    settings = PruneSettings(ratio=0.3, importance=importance)
    prune_channels(trainable, (3, 32, 32), settings, grad_fn=grad_fn)
    prune_channels(frozen, (3, 32, 32), settings, grad_fn=grad_fn)
    assert _convs(frozen) == _convs(trainable) != _convs(model)
    assert not any(p.requires_grad for p in frozen.parameters())
    flags = {n: p.requires_grad for n, p in trainable.named_parameters()}
    assert flags.pop("conv1.weight") is False and all(flags.values())


def test_bad_settings():
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\)"):
        PruneSettings(ratio=1.5)
    with pytest.raises(ValueError, match="Did you mean 'l1'"):
        PruneSettings(importance="l11")


def test_recalibrate_bn_reestimates_statistics_and_touches_nothing_else():
    from compress.prune.structured import recalibrate_bn

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5)
    ).eval()
    bn = model[1]
    bn.running_mean.fill_(7.0)  # stale statistics, as after pruning
    bn.running_var.fill_(9.0)
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "batches" not in k
    }
    batches = [(torch.randn(8, 1, 6, 6) * 2 + 1, None) for _ in range(5)]
    assert recalibrate_bn(model, iter(batches), limit=3) == 24
    conv = model[0](torch.cat([x for x, _ in batches[:3]]))  # the first 3 batches only
    torch.testing.assert_close(bn.running_mean, conv.mean((0, 2, 3)))
    # momentum=None averages the per-batch unbiased variances
    per_batch = torch.stack([model[0](x).var((0, 2, 3), unbiased=True) for x, _ in batches[:3]])
    torch.testing.assert_close(bn.running_var, per_batch.mean(0))
    assert bn.momentum == 0.1 and not model.training and not bn.training
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    assert recalibrate_bn(model, iter(batches), limit=0) == 0
