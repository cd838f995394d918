from __future__ import annotations

import pytest
import torch

from compress.engine.metrics import evaluate, topk_correct
from compress.engine.optim import build_optimizer, build_scheduler, lr_factor
from compress.engine.settings import OptimSettings, ScheduleSettings


def test_multistep_with_absolute_and_fractional_milestones():
    absolute = ScheduleSettings(name="multistep", milestones=[150, 180, 210], gamma=0.1)
    fractional = ScheduleSettings(name="multistep", milestones=[0.625, 0.75, 0.875], gamma=0.1)
    for sched in (absolute, fractional):
        f = [lr_factor(e * 10, 10, 240, sched, 0.05) for e in (0, 149, 150, 180, 239)]
        assert f == pytest.approx([1, 1, 0.1, 0.01, 0.001])


def test_cosine_with_warmup():
    sched = ScheduleSettings(name="cosine", warmup_epochs=2, min_lr=0.0)
    assert lr_factor(0, 10, 10, sched, 0.1) == pytest.approx(1 / 20)
    assert lr_factor(19, 10, 10, sched, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 10, sched, 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 10, 10, sched, 0.1) == pytest.approx(0.0, abs=1e-9)


def test_scheduler_drives_optimizer():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], OptimSettings(name="sgd", lr=0.5))
    sched = build_scheduler(
        opt, ScheduleSettings(name="multistep", milestones=[1]), steps_per_epoch=2, epochs=2
    )
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5, 0.5, 0.05, 0.05])


def test_adamw_excludes_norms_and_biases_from_decay():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    opt = build_optimizer(
        model.parameters(), OptimSettings(name="adamw", lr=1e-3, weight_decay=0.05)
    )
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and len(decay["params"]) == 1
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3


def test_topk_and_evaluate():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert topk_correct(logits, labels, ks=(1, 2, 5)) == [1, 2, 3]
    model = torch.nn.Identity()
    result = evaluate(model, [(logits, labels)])
    assert (
        result["top1"] == pytest.approx(1 / 3) and result["top5"] == 1.0 and result["samples"] == 3
    )
