"""FSP equals RepDistiller on identical inputs, and runs its protocol: an init phase, then CE.

The reference below is RepDistiller's ``distiller_zoo/FSP.py`` (``compute_fsp``,
``compute_loss``) written here from that code, fed RepDistiller's ``feat_s[:-1]``: the stem's
output and each stage's output of the CIFAR ResNet.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import compress
from compress.config import build
from compress.distill.api import distill
from compress.distill.base import DistillContext
from compress.distill.config import DistillConfig
from compress.distill.methods import METHODS


def ref_compute_fsp(g):
    fsp_list = []
    for i in range(len(g) - 1):
        bot, top = g[i], g[i + 1]
        b_h, t_h = bot.shape[2], top.shape[2]
        if b_h > t_h:
            bot = F.adaptive_avg_pool2d(bot, (t_h, t_h))
        elif b_h < t_h:
            top = F.adaptive_avg_pool2d(top, (b_h, b_h))
        bot = bot.unsqueeze(1)
        top = top.unsqueeze(2)
        bot = bot.view(bot.shape[0], bot.shape[1], bot.shape[2], -1)
        top = top.view(top.shape[0], top.shape[1], top.shape[2], -1)
        fsp_list.append((bot * top).mean(-1))
    return fsp_list


def ref_fsp_loss(g_s, g_t):
    return sum((s - t).pow(2).mean() for s, t in zip(ref_compute_fsp(g_s), ref_compute_fsp(g_t)))


def repdistiller_feats(net, x):
    """[f0, f1, f2, f3] of RepDistiller's CIFAR ResNet forward (is_feat=True, feat[:-1])."""
    f0 = net.relu(net.bn1(net.conv1(x)))
    f1 = net.layer1(f0)
    f2 = net.layer2(f1)
    f3 = net.layer3(f2)
    logits = net.fc(torch.flatten(net.avgpool(f3), 1))
    return [f0, f1, f2, f3], logits


class _Info:
    name, num_classes, in_channels, input_size = "x", 10, 3, (32, 32)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _task(settings):
    torch.manual_seed(0)
    student = compress.create_model("resnet20", num_classes=10).train()
    teacher = compress.create_model("resnet56", num_classes=10).eval()
    ctx = DistillContext(info=_Info(), device=torch.device("cpu"), log=lambda _m: None)
    spec = METHODS.get("fsp")
    s = build(DistillConfig, {"method": "fsp", "method_args": settings}).settings()
    task = spec.build(student, teacher, s, ctx).double()
    return task, spec.init_phase(task, s), student, teacher


def test_the_init_loss_and_its_gradient_equal_repdistillers():
    _, phase, student, teacher = _task({})
    init, epochs = phase
    assert epochs == 30  # RepDistiller's --init_epochs
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    y = torch.arange(6) % 10
    ours = init(x, y)["loss"]
    g_ours = torch.autograd.grad(ours, list(student.parameters()), allow_unused=True)
    with torch.no_grad():
        f_t, _ = repdistiller_feats(teacher, x)
    f_s, _ = repdistiller_feats(student, x)
    theirs = ref_fsp_loss(f_s, f_t)  # unweighted, three pairs, no CE
    g_theirs = torch.autograd.grad(theirs, list(student.parameters()), allow_unused=True)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-12)
    for a, b in zip(g_ours, g_theirs):
        if b is None:
            assert a is None
        else:
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))
    assert len(ref_compute_fsp(f_s)) == 3


def test_the_init_phase_trains_everything_but_the_classifier_then_ce_alone():
    task, (init, _), student, _ = _task({})
    names = {id(p): n for n, p in student.named_parameters()}
    trained = {names[id(p)] for p in init.trainable_parameters() if id(p) in names}
    assert trained == {n for n in names.values() if not n.startswith("fc.")}
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    y = torch.arange(4)
    out = task(x, y)  # the run after the init: RepDistiller's weight 0, so CE only
    assert float(out["loss"]) == pytest.approx(float(F.cross_entropy(student(x), y)), rel=1e-12)
    joint, phase, *_ = _task({"init_epochs": 0, "weight": 50.0, "pairs": "stages"})
    assert phase is None and "fsp" in joint(x, y)  # the joint variant, stages only


def test_init_phase_runs_before_the_epochs_and_a_kill_between_phases_resumes(
    digits_model, tmp_path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    recipe = {
        "student": "resnet8", "teacher": str(digits_model), "method": "fsp",
        "method_args": {"init_epochs": 2}, "epochs": 2, "device": "cpu", "progress": False,
        "threads": 1, "data": {"name": "digits", "batch_size": 64, "train_subset": 400},
    }  # fmt: skip
    ref = distill(build(DistillConfig, {**recipe, "output": str(tmp_path / "ref")}), log=print)
    init = json.loads((tmp_path / "ref" / "init" / "summary.json").read_text())
    assert init["epochs"] == 2 and ref["epochs"] == 2 and ref["init_phase"]["epochs"] == 2
    lines = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # the run's own epochs; the init phase's are in init/
    torch.manual_seed(0)  # the seed the run builds its student with
    fresh = compress.create_model("resnet8", num_classes=10, in_channels=1)
    after_init = compress.load_model(tmp_path / "ref" / "init" / "last.safetensors")
    assert torch.equal(after_init.fc.weight, fresh.fc.weight)  # the classifier waits
    assert not torch.equal(after_init.conv1.weight, fresh.conv1.weight)

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "compress", "distill", "--config", str(cfg), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed once the init phase has finished, before the run's first epoch ends
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "init" / "summary.json").exists():
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = distill(build(DistillConfig, {**recipe, "output": str(out), "resume": True}),
                      log=print)  # fmt: skip
    assert resumed["top1"] == ref["top1"] and resumed["top1_last"] == ref["top1_last"]
