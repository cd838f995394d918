"""No user file is lost: real folders, real `compress` processes, real SIGINT/SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from compress.artifacts import read_header
from tests.conftest import FAST_DIGITS, interruptible

COMPRESS = [sys.executable, "-m", "compress"]


def pipeline(tmp_path: Path, epochs: int, name: str = "t") -> Path:
    stage = {k: v for k, v in FAST_DIGITS.items() if k != "data"}
    path = tmp_path / "pipe.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "defaults": {"data": {"name": "digits", "batch_size": 32}, "device": "cpu"},
                "stages": [{"name": name, "type": "train", **stage, "epochs": epochs}],
            }
        )
    )
    return path


def compress_run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMPRESS, *map(str, args)], capture_output=True, text=True, timeout=600, **kwargs
    )


def start(*args) -> subprocess.Popen:
    return interruptible(
        [*COMPRESS, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(proc: subprocess.Popen, text: str) -> list[str]:
    """Read the process's output until a line containing `text` (bounded by the process ending)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"'{text}' never printed: {''.join(seen)}")


def epochs_of(model: Path) -> int:
    return read_header(model).metrics["epoch"]


def test_interrupted_rerun_keeps_the_last_finished_outputs(tmp_path):
    out = tmp_path / "out"
    done = compress_run("run", pipeline(tmp_path, 2), "-o", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert epochs_of(out / "t" / "model.safetensors") == 2

    # the interrupted re-runs ask for more epochs than could ever finish before the signal
    # lands (minutes of training), so the interrupt always finds them mid-stage, however loaded
    # the machine: no race between the signal and the end of the run
    endless = 10_000
    proc = start("run", pipeline(tmp_path, endless), "-o", out)
    wait_for(proc, "train resnet8")  # the long run has started, the 2-epoch one moved aside
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert epochs_of(out / "t.prev" / "model.safetensors") == 2
    assert json.loads((out / "t" / "stage.json").read_text())["status"] == "running"

    # going back to the finished config restores it instead of training again
    back = compress_run("run", pipeline(tmp_path, 2), "-o", out)
    assert back.returncode == 0 and "restored" in back.stdout, back.stdout + back.stderr
    assert epochs_of(out / "t" / "model.safetensors") == 2

    # a SIGKILLed re-run, then a complete one: the 2-epoch outputs stay in t.prev throughout
    proc = start("run", pipeline(tmp_path, endless), "-o", out)
    wait_for(proc, "train resnet8")
    proc.kill()
    proc.wait(timeout=60)
    assert epochs_of(out / "t.prev" / "model.safetensors") == 2
    again = compress_run("run", pipeline(tmp_path, 3), "-o", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert epochs_of(out / "t" / "model.safetensors") == 3
    assert epochs_of(out / "t.prev" / "model.safetensors") == 2


def test_run_never_deletes_a_prev_folder_it_did_not_make(tmp_path):
    out = tmp_path / "out"
    assert compress_run("run", pipeline(tmp_path, 1, "e"), "-o", out).returncode == 0
    mine = out / "e.prev"
    mine.mkdir()
    (mine / "keep.txt").write_text("the user's")
    result = compress_run("run", pipeline(tmp_path, 2, "e"), "-o", out)
    assert result.returncode == 2 and "not made by compress" in result.stderr, result.stderr
    assert (mine / "keep.txt").read_text() == "the user's"
    assert epochs_of(out / "e" / "model.safetensors") == 1


def test_stage_names_cannot_reach_outside_the_output(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("precious")
    for name in (str(victim), "../victim", "."):
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({"stages": [{"name": name, "type": "train"}]}))
        result = compress_run("run", path, "-o", tmp_path / "out")
        assert result.returncode == 2 and "folder name" in result.stderr, result.stderr
    assert (victim / "data.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "victim"]


def test_train_refuses_a_folder_that_is_not_a_run(tmp_path):
    user = tmp_path / "u"
    user.mkdir()
    (user / "config.yaml").write_text("mine: true\n")
    (user / "model.safetensors").write_bytes(b"my weights")
    result = compress_run("train", "--dataset", "digits", "--epochs", "1", "-o", user)
    assert result.returncode == 2 and "compress did not write" in result.stderr
    assert (user / "config.yaml").read_text() == "mine: true\n"
    assert (user / "model.safetensors").read_bytes() == b"my weights"


def test_two_runs_into_one_output_cannot_mix(tmp_path):
    out = tmp_path / "o"
    args = ["train", "--dataset", "digits", "--model", "resnet8", "--epochs", "2", "-o", out]
    first = start(*args, "--seed", "1")
    try:
        wait_for(first, "train resnet8")  # the first one holds the folder now
        # stopped, it keeps holding the folder however fast the machine or however slow the
        # second process's start: the test does not depend on timing
        first.send_signal(signal.SIGSTOP)
        try:
            second = compress_run(*args, "--seed", "2")
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2 and "in use by another compress process" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.communicate(timeout=300)
    assert first.returncode == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert (
        config["seed"] == 1
        and summary["config_hash"]
        == read_header(out / "model.safetensors").provenance["config_hash"]
    )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
