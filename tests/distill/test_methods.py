from __future__ import annotations

import pytest
import torch

from compress.artifacts import load_model
from compress.config import build
from compress.data import DataSettings, build_loaders, load_data
from compress.distill.base import DistillContext
from compress.distill.config import DistillConfig
from compress.distill.methods import METHODS
from compress.engine.optim import build_optimizer
from compress.engine.settings import OptimSettings
from compress.models import create_model


def _task(method, teacher_path, data, eval_loader):
    spec = METHODS.get(method)
    info = data.info
    torch.manual_seed(0)
    student = create_model("resnet8", num_classes=10, in_channels=1)
    teacher = load_model(teacher_path) if spec.needs_teacher else None
    ctx = DistillContext(
        info=info, device=torch.device("cpu"), eval_loader=eval_loader, log=lambda _m: None
    )
    return spec.build(student, teacher, build(DistillConfig, {"method": method}).settings(), ctx)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_trains_one_epoch_on_digits_and_its_loss_falls(method, digits_model):
    settings = DataSettings(name="digits", batch_size=32)
    data = load_data(settings)
    train_loader, eval_loader = build_loaders(data, settings)
    task = _task(method, digits_model, data, eval_loader)
    probe = next(iter(eval_loader))

    def probe_loss() -> float:
        task.on_epoch_start(0, 1)  # same augmentation stream for both measurements
        task.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            return float(task(*probe)["loss"])

    before = probe_loss()
    # ONE's freshly initialised branches (their BatchNorm statistics included) make its eval-mode
    # loss unstable after one epoch at 0.05: it gets the smaller rate
    opt = build_optimizer(
        task.trainable_parameters(), OptimSettings(lr=0.01 if method == "one" else 0.05)
    )
    task.train()
    task.on_epoch_start(0, 1)
    for x, y in train_loader:
        out = task(x, y)
        assert {"loss", "logits"} <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = probe_loss()
    assert after < before, (method, before, after)


def test_every_method_is_tested():
    assert set(METHODS.names()) == {
        "none", "kd", "dist", "dkd", "dml", "r2kd",
        "fitnet", "fsp", "at", "sp", "rkd-d", "rkd-a", "rkd-da", "bss", "one",
    }  # fmt: skip


def test_faithful_preset_sets_every_switch_of_the_released_code():
    default = build(DistillConfig, {"method": "r2kd"}).settings()
    faithful = build(DistillConfig, {"method": "r2kd", "preset": "faithful"}).settings()
    assert (default.prune.mode, default.prune.bn, default.rank) == ("structured", "eval", "soft")
    assert faithful.prune.mode == "unstructured"
    assert faithful.prune.ratio == 0.1
    assert faithful.prune.bn == "batch"
    assert faithful.rank == "hard"
    assert faithful.centered is False
    assert (faithful.blend, faithful.temperature, faithful.alpha, faithful.beta) == (
        0.7,
        4.0,
        2.0,
        2.0,
    )
    assert faithful.augment == "cutmix" and faithful.cutmix_alpha == 1.0
    assert faithful.ce_weight == 1.0
    assert faithful.prune.recalibrate == 0  # the released copy keeps the teacher's statistics
    # and the released code trains in fp32: the preset turns autocast off, the default keeps bf16
    assert build(DistillConfig, {"method": "r2kd", "preset": "faithful"}).amp == "none"
    assert build(DistillConfig, {"method": "r2kd"}).amp == "bf16"
    assert (
        build(DistillConfig, {"method": "r2kd", "preset": "faithful", "amp": "bf16"}).amp == "bf16"
    )
    # explicit settings still win over the preset
    mixed = build(
        DistillConfig, {"method": "r2kd", "preset": "faithful", "method_args": {"rank": "soft"}}
    ).settings()
    assert mixed.rank == "soft" and mixed.prune.mode == "unstructured"


def test_r2kd_batch_statistics_mode_keeps_pruned_copy_in_train_mode(digits_model):
    settings = DataSettings(name="digits")
    data = load_data(settings)
    spec = METHODS.get("r2kd")
    cfg = build(DistillConfig, {"method": "r2kd", "preset": "faithful"}).settings()
    ctx = DistillContext(info=data.info, device=torch.device("cpu"), log=lambda _m: None)
    task = spec.build(create_model("resnet8", in_channels=1), load_model(digits_model), cfg, ctx)
    task.train()
    bns = [m for m in task.pruned.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training for m in bns) and not task.teacher.training
    task.eval()
    assert all(m.training for m in bns)  # the released code never evaluates the copy in eval mode
