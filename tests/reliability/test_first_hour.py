"""A new user's first hour: feedback outside a terminal, an interrupt that says how to resume,
pruning an image-folder model that gives the same file twice, help that shows the defaults."""

from __future__ import annotations

import signal
import subprocess
import sys

import torch
from click.testing import CliRunner

from compress.artifacts import load_state
from compress.cli import cli
from tests.conftest import interruptible, write_digits_folder

COMPRESS = [sys.executable, "-m", "compress"]


def test_progress_lines_outside_a_terminal_and_an_estimate(tmp_path):
    result = subprocess.run(
        [*COMPRESS, "train", "--model", "resnet8", "--dataset", "digits", "--epochs", "2",
         "--batch-size", "16", "--device", "cpu", "-o", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [line for line in lines if line.startswith("  epoch 1/2 step")]
    assert len(steps) >= 5, result.stdout  # about every 10 % of an epoch, piped
    assert all("img/s" in line and "ETA" in line for line in steps)
    assert any(line.startswith("about ") and "for 2 epoch(s)" in line for line in lines)


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(tmp_path):
    out = tmp_path / "t"
    args = ["train", "--model", "resnet8", "--dataset", "digits", "--epochs", "10000",
            "--device", "cpu", "-o", str(out)]  # fmt: skip
    proc = interruptible(
        [*COMPRESS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:  # bounded: the run never ends on its own before the signal
        if line.startswith("epoch 1/10000"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped after epoch" in err and "resume with: compress train" in err
    assert err.strip().endswith("--resume"), err


def test_pruning_an_image_folder_model_gives_the_same_file_twice(tmp_path):
    data = write_digits_folder(tmp_path / "d", size=16, train_per_class=8, val_per_class=2)
    model = tmp_path / "m"
    trained = CliRunner().invoke(
        cli,
        ["train", "--model", "resnet8", "--dataset", "imagefolder", "--data-dir", str(data),
         "--image-size", "16", "--epochs", "1", "--device", "cpu", "-o", str(model)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    states = []
    for name in ("a", "b"):
        result = CliRunner().invoke(
            cli,
            ["prune", str(model / "model.safetensors"), "--data-dir", str(data), "--ratio",
             "0.25", "--no-latency", "-o", str(tmp_path / name)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        states.append(load_state(tmp_path / name / "model.safetensors"))
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_help_shows_every_default():
    text = CliRunner().invoke(cli, ["distill", "--help"]).output
    assert "[default: 240]" in text and "[default: r2kd]" in text and "[default: 64]" in text
    text = CliRunner().invoke(cli, ["export", "--help"]).output
    assert "[default: onnx]" in text and "default 512" in text
