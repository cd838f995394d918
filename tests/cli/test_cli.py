from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from compress.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_does_not_import_torch():
    code = "import sys; from compress.cli import cli; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    result = invoke("--help")
    assert result.exit_code == 0
    for verb in ("train", "eval", "info", "run", "models", "datasets"):
        assert verb in result.output


def test_train_flags_reach_the_config(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--model",
        "resnet8",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--output",
        str(out),
        "--set",
        "schedule.name=cosine",
    )
    assert result.exit_code == 0, result.output
    assert "best top-1" in result.output
    config = (out / "config.yaml").read_text()
    for expected in (
        "model: resnet8",
        "epochs: 1",
        "seed: 3",
        "batch_size: 32",
        "lr: 0.1",
        "name: cosine",
    ):
        assert expected in config
    summary = json.loads((out / "summary.json").read_text())
    assert {"top1", "top1_last"} <= set(summary)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    cases = [
        (["train", "--model", "resnt8"], "Did you mean 'resnet8'"),
        (["train", "--dataset", "cifar10", "--data-dir", str(tmp_path)], "cifar10 not found"),
        (["train", "--config", str(tmp_path / "missing.yaml")], "does not exist"),
        (["train", "--set", "optim.lrr=1"], "Did you mean 'optim.lr'"),
        (["eval", str(tmp_path / "none.safetensors")], "does not exist"),
        (["info", str(tmp_path)], "directory"),
        (["run", str(tmp_path / "none.yaml")], "does not exist"),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_existing_run_is_not_overwritten(digits_model):
    before = digits_model.read_bytes()
    result = CliRunner().invoke(
        cli, ["train", "--output", str(digits_model.parent), "--epochs", "1"]
    )
    assert result.exit_code == 2 and "--resume" in result.output
    assert digits_model.read_bytes() == before


def test_eval_info_models_datasets(digits_model, tmp_path):
    result = invoke("eval", str(digits_model), "--json", str(tmp_path / "e.json"))
    assert result.exit_code == 0 and "top-1" in result.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["dataset"] == "digits" and data["top1"] > 0.9 and data["samples"] == 360
    info = invoke("info", str(digits_model), "--json")
    facts = json.loads(info.output)
    assert facts["arch"]["name"] == "resnet8" and facts["params"] > 70_000 and facts["macs"] > 0
    assert "resnet8x4" in invoke("models", "resnet8*").output
    assert "fashion-mnist" in invoke("datasets").output


def test_eval_rejects_a_mismatched_dataset(digits_model, cifar100_dir):
    result = CliRunner().invoke(
        cli, ["eval", str(digits_model), "--dataset", "cifar100", "--data-dir", str(cifar100_dir)]
    )
    assert result.exit_code == 2 and "10 classes but cifar100 has 100" in result.output
