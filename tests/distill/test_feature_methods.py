"""The seed study's feature, relation and online methods on real zoo models and real digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from compress.artifacts import load_model
from compress.config import build
from compress.data import DataSettings, build_loaders, load_data
from compress.distill.api import distill
from compress.distill.base import DistillContext
from compress.distill.config import DistillConfig
from compress.distill.features import probe_shapes, stages_of
from compress.distill.methods import METHODS
from compress.models import create_model, list_models
from tests.conftest import reloads_identically

FAMILIES = [  # (student, teacher): every CIFAR zoo family and torchvision ResNets / MobileNets
    ("resnet8", "resnet32x4"),
    ("wrn_16_2", "wrn_40_2"),
    ("vgg8", "vgg13"),
    ("mobilenetv2", "resnet32x4"),
    ("shufflenetv1", "resnet8x4"),
    ("shufflenetv2", "wrn_16_2"),
    ("resnet18", "resnet34"),
    ("mobilenet_v2", "resnet18"),
]
FEATURE_METHODS = ["fitnet", "fsp", "at", "sp", "rkd-d", "rkd-a", "rkd-da", "bss"]


class _Info:
    name, num_classes, in_channels, input_size = "x", 10, 3, (32, 32)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _build(method, student, teacher):
    spec = METHODS.get(method)
    ctx = DistillContext(info=_Info(), device=torch.device("cpu"), log=lambda _m: None)
    return spec.build(student, teacher, build(DistillConfig, {"method": method}).settings(), ctx)


@pytest.mark.parametrize("pair", FAMILIES, ids=lambda p: f"{p[0]}<-{p[1]}")
def test_feature_methods_work_on_every_family(pair):
    torch.manual_seed(0)
    student, teacher = (create_model(n, num_classes=10) for n in pair)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    for method in FEATURE_METHODS:
        if method == "fsp" and len(stages_of(student, "s")) != len(stages_of(teacher, "t")):
            with pytest.raises(Exception, match="pairs stages one to one"):
                _build(method, student, teacher)
            continue
        task = _build(method, student, teacher).train()
        out = task(x, y)
        assert torch.isfinite(out["loss"]), (method, pair)
        out["loss"].backward()
        assert student.fc.weight.grad is not None if hasattr(student, "fc") else True
        student.zero_grad()


@pytest.mark.parametrize(
    "name", [n for n in list_models() if n not in ("efficientnet_b0", "regnet_y_400mf")]
)
def test_every_stage_definition_halves_or_keeps_the_resolution(name):
    model = create_model(name, num_classes=10)
    shapes = probe_shapes(model, stages_of(model, "model"), (3, 64, 64))
    sides = [s[-1] for s in shapes]
    assert sides == sorted(sides, reverse=True) and len(set(sides)) >= min(2, len(sides)), sides


def _digits_run(tmp_path, method, epochs=2, **extra):
    return {
        "student": "resnet8",
        "method": method,
        "data": {"name": "digits", "batch_size": 64, "train_subset": 600},
        "epochs": epochs,
        "optim": {"name": "sgd", "lr": 0.05},
        "device": "cpu",
        "progress": False,
        "threads": 1,
        **extra,
    }


# each method's one-epoch training is in tests/distill/test_methods.py; the file round trip of a
# feature method is the same code for all, so four of them are the slow set
@pytest.mark.parametrize(
    "method",
    [
        "fitnet",
        "bss",
        "one",
        *(pytest.param(m, marks=pytest.mark.slow) for m in ("fsp", "at", "sp", "rkd-da")),
    ],
)
def test_saved_student_is_a_plain_zoo_model(method, digits_model, tmp_path):
    teacher = None if METHODS.get(method).online else str(digits_model)
    cfg = _digits_run(tmp_path, method, epochs=1, teacher=teacher, output=str(tmp_path / "r"))
    if method == "fsp":
        cfg["method_args"] = {"init_epochs": 1}
    distill(build(DistillConfig, cfg), log=lambda _m: None)
    path = tmp_path / "r" / "model.safetensors"
    plain = create_model("resnet8", num_classes=10, in_channels=1)
    model = load_model(path)
    assert set(model.state_dict()) == set(plain.state_dict())  # no connector, branch or gate
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert reloads_identically(path, x, model(x))


def test_one_exports_its_best_branch_and_logs_it(tmp_path):
    cfg = _digits_run(tmp_path, "one", epochs=2, output=str(tmp_path / "o"))
    summary = distill(build(DistillConfig, cfg), log=lambda _m: None)
    lines = [
        json.loads(line) for line in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    ]
    best = max(lines, key=lambda r: r["top1"])
    assert best["top1"] == pytest.approx(best["branch_top1"][best["best_branch"]])
    assert summary["deployed"]["ensemble_top1"] == lines[-1]["ensemble_top1"]
    # the exported file scores what was logged for the branch it holds
    settings = DataSettings(name="digits", batch_size=64)
    _, test = build_loaders(load_data(settings), settings)
    from compress.engine.metrics import evaluate

    assert evaluate(load_model(tmp_path / "o" / "model.safetensors"), test)["top1"] == best["top1"]


def test_one_gate_weights_sum_to_one():
    student = create_model("resnet8", num_classes=10, in_channels=3)
    task = _build("one", student, None)
    _, ensemble, gate = task.all_logits(torch.randn(5, 3, 32, 32))
    assert gate.shape == (5, 3) and torch.allclose(gate.sum(1), torch.ones(5))
    assert ensemble.shape == (5, 10)


def test_bss_samples_move_the_teachers_top2_margin_toward_zero(digits_model):
    from compress.distill.methods.bss import BSSSettings, boundary_samples

    teacher = load_model(digits_model)
    settings = DataSettings(name="digits", batch_size=64)
    _, test = build_loaders(load_data(settings), settings)
    x, y = next(iter(test))
    with torch.no_grad():
        right = teacher(x).argmax(1) == y
    x, y = x[right][:64], y[right][:64]

    def margin(images, target):
        with torch.no_grad():
            z = teacher(images)
        rows = torch.arange(len(y))
        return z[rows, y] - z[rows, target]

    target = teacher(x).detach().sort(1, descending=True)[1][:, 1]
    adv = boundary_samples(teacher, x, target, BSSSettings())
    before, after = margin(x, target), margin(adv, target)
    assert (before > 0).all()
    assert after.abs().mean() < 0.5 * before.abs().mean()
    assert (after < before).float().mean() > 0.9


def _metrics(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["fitnet", pytest.param("one", marks=pytest.mark.slow)])
def test_sigkill_then_resume_matches_an_uninterrupted_run(method, digits_model, tmp_path):
    """Connectors and ONE's branches live in the checkpoint: a resume continues them exactly."""
    teacher = None if METHODS.get(method).online else str(digits_model)
    recipe = _digits_run(tmp_path, method, epochs=4, teacher=teacher)
    ref = distill(
        build(DistillConfig, {**recipe, "output": str(tmp_path / "ref")}), log=lambda _m: None
    )
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "compress", "distill", "--config", str(cfg_file), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            text = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else ""
            if text.endswith("\n"):
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 1 <= len(_metrics(out)) < 4
    resumed = distill(
        build(DistillConfig, {**recipe, "output": str(out), "resume": True}), log=lambda _m: None
    )
    assert [r["epoch"] for r in _metrics(out)] == [1, 2, 3, 4]
    for a, b in zip(_metrics(out), _metrics(tmp_path / "ref")):
        assert a["top1"] == b["top1"] and a["train_loss"] == pytest.approx(
            b["train_loss"], rel=1e-6
        )
    assert resumed["top1"] == ref["top1"]


def test_dml_can_keep_its_best_peer(tmp_path):
    cfg = _digits_run(tmp_path, "dml", epochs=2, output=str(tmp_path / "d"))
    cfg["method_args"] = {"keep": "best"}
    distill(build(DistillConfig, cfg), log=lambda _m: None)
    lines = _metrics(tmp_path / "d")
    for r in lines:
        assert r["top1"] == max(r["peer_top1"]) and r["peer_top1"][r["best_peer"]] == r["top1"]


def test_dml_alternating_update_uses_the_peers_fresh_predictions(tmp_path):
    import torch.nn.functional as F

    student = create_model("resnet8", num_classes=10, in_channels=3)
    spec = METHODS.get("dml")
    settings = build(
        DistillConfig, {"method": "dml", "method_args": {"update": "alternating"}}
    ).settings()
    ctx = DistillContext(info=_Info(), device=torch.device("cpu"), log=lambda _m: None)
    task = spec.build(student, None, settings, ctx).eval()  # eval: BatchNorm stays put
    assert task.substeps == 2
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6) % 10
    opt = torch.optim.SGD(task.parameters(), lr=0.5)
    task.substep(0, x, y)["loss"].backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        fresh = task.model(x)  # peer 0 after its own step of this batch
    out = task.substep(1, x, y)
    z = task.peers[0](x)
    expected = F.kl_div(F.log_softmax(z, 1), F.softmax(fresh, 1), reduction="batchmean")
    assert float(out["kl"]) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_dml_alternating_trains_through_the_engine(tmp_path):
    cfg = _digits_run(tmp_path, "dml", epochs=1, output=str(tmp_path / "a"))
    cfg["method_args"] = {"update": "alternating"}
    summary = distill(build(DistillConfig, cfg), log=lambda _m: None)
    assert summary["top1"] > 0.2
    config = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert config["method_args"]["update"] == "alternating"
