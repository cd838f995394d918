"""The notebook API on real digits: dicts in, results out, an in-memory teacher, every verb."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import compress
from compress.errors import CompressError

QUIET = {"log": lambda _m: None}


def test_dir_lists_the_verbs():
    names = dir(compress)
    for verb in ("train", "distill", "prune", "export", "benchmark", "load_model", "create_model"):
        assert verb in names
    assert callable(compress.train) and callable(compress.distill) and callable(compress.prune)


def test_train_distill_prune_export_benchmark_from_dicts_and_modules(tmp_path):
    teacher = compress.train(
        {"model": "resnet8", "data": {"name": "digits", "batch_size": 32}, "epochs": 2},
        output=str(tmp_path / "t"),
        progress=False,
        **QUIET,
    )
    assert teacher["top1"] > 0.8 and isinstance(teacher.model, torch.nn.Module)
    # an in-memory teacher: saved beside the run, so the run stays reproducible from files
    student = compress.distill(
        teacher=teacher.model,
        student="resnet8",
        method="kd",
        epochs=1,
        output=str(tmp_path / "s"),
        progress=False,
        **{"data.train_subset": 400},
        **QUIET,
    )
    recorded = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert student.summary == {**recorded, "output": str(tmp_path / "s")}
    assert recorded["teacher_file"]["path"].endswith("s.inputs/teacher.safetensors")
    pruned = compress.prune(
        model=student.model,
        output=str(tmp_path / "p"),
        latency=False,
        **{"prune.ratio": 0.25},
        **QUIET,
    )
    assert pruned["params_after"] < pruned["params_before"]
    exported = compress.export(
        model=str(tmp_path / "p" / "model.safetensors"),
        format="onnx",
        output=str(tmp_path / "e"),
        **QUIET,
    )
    assert exported["formats"]["onnx"]["validation"]["passed"]
    bench = compress.benchmark(
        models=[pruned.model], formats=["torch", "onnx"], output=str(tmp_path / "b"),
        **{"profile.iters": 2, "profile.eval_images": 50, "profile.duration": 0.0}, **QUIET,
    )  # fmt: skip
    assert [r["status"] for r in bench["rows"]] == ["ok", "ok"]


def test_api_errors_are_the_cli_ones():
    with pytest.raises(CompressError, match="unknown key 'epoch'"):
        compress.train(epoch=3)
    with pytest.raises(CompressError, match="no architecture record"):
        compress.distill(teacher=torch.nn.Linear(2, 2), output="/tmp/never-made")


def test_loggers_write_csv_curves_and_tensorboard(tmp_path):
    out = tmp_path / "r"
    compress.train(
        model="resnet8", data={"name": "digits", "batch_size": 32}, epochs=2, progress=False,
        loggers=["csv", "tensorboard"], output=str(out), **QUIET,
    )  # fmt: skip
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "top1", "lr", "images_per_s"} <= set(rows[0])
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert "epoch/top1" in scalars and "train_step/loss" in scalars and "train_step/lr" in scalars
    # epoch scalars sit on the step axis of train_step/* (45 steps an epoch), at each epoch's end
    assert [e.step for e in events.Scalars("epoch/top1")] == [45, 90]
    assert len(events.Scalars("train_step/loss")) == (2 * 45) // 10  # every 10 of 45 steps/epoch


def test_wandb_logger_offline(tmp_path):
    pytest.importorskip("wandb", reason="wandb is an optional extra, not installed here")
    out = tmp_path / "w"
    compress.train(
        model="resnet8", data={"name": "digits"}, epochs=1, progress=False, loggers=["wandb"],
        output=str(out), **QUIET,
    )  # fmt: skip
    assert any((out / "wandb").iterdir())


def test_keywords_merge_into_the_dict_key_by_key():
    from compress.api import _settings
    from compress.train import TrainConfig

    config = _settings(
        TrainConfig,
        {"data": {"name": "fashion-mnist", "batch_size": 16}, "epochs": 3},
        {"data": {"batch_size": 32}, "optim.lr": 0.2, "seed": None},
    )
    assert config.data.name == "fashion-mnist" and config.data.batch_size == 32
    assert config.optim.lr == 0.2 and config.epochs == 3 and config.seed == 0
