from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from compress.artifacts import read_header
from compress.config import build, config_hash
from compress.data import DataSettings, build_loaders, load_data
from compress.engine import SupervisedTask, TrainSettings, fit
from compress.errors import CompressError, TrainingDivergedError
from compress.models import create_model
from compress.train import TrainConfig, train
from tests.conftest import FAST_DIGITS


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_two_epochs_on_digits_pass_90_percent(tmp_path):
    summary = train(
        build(TrainConfig, {**FAST_DIGITS, "output": str(tmp_path / "r")}), log=lambda _m: None
    )
    assert summary["top1"] > 0.90
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {
        "model.safetensors",
        "last.safetensors",
        "state.pt",
        "metrics.jsonl",
        "summary.json",
        "config.yaml",
    } <= files
    on_disk = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert 0 <= on_disk["top1_last"] <= on_disk["top1"] <= 1
    assert len(_metrics(tmp_path / "r")) == 2
    assert read_header(tmp_path / "r" / "model.safetensors").metrics["top1"] == on_disk["top1"]


def _one_line_written(path) -> bool:
    try:
        return path.read_text().endswith("\n")
    except FileNotFoundError:
        return False


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill -9 after the first checkpoint; --resume finishes every epoch, identical to a clean run."""
    recipe = {**FAST_DIGITS, "epochs": 8, "threads": 1}
    ref = train(
        build(TrainConfig, {**recipe, "output": str(tmp_path / "ref")}), log=lambda _m: None
    )
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "compress",
        "train",
        "--config",
        str(cfg_file),
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # wait for one whole line: the file exists a moment before its first line is written
        while (
            not _one_line_written(out / "metrics.jsonl")
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = len(_metrics(out))
    assert 1 <= done_before < 8
    resumed = train(
        build(TrainConfig, {**recipe, "output": str(out), "resume": True}), log=lambda _m: None
    )
    lines = _metrics(out)
    assert [r["epoch"] for r in lines] == list(range(1, 9))
    reference = _metrics(tmp_path / "ref")
    for a, b in zip(lines, reference):
        assert a["top1"] == b["top1"] and a["train_loss"] == pytest.approx(
            b["train_loss"], rel=1e-6
        )
    assert resumed["top1"] == ref["top1"] and resumed["top1_last"] == ref["top1_last"]


def test_resume_refuses_a_changed_config(digits_model):
    out = digits_model.parent
    with pytest.raises(CompressError, match="config differs"):
        train(
            build(
                TrainConfig,
                {
                    **FAST_DIGITS,
                    "epochs": 3,
                    "optim": {"lr": 0.2},
                    "output": str(out),
                    "resume": True,
                },
            )
        )


class _NanAfterFirstEpoch(SupervisedTask):
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.poison = epoch >= 1

    def forward(self, x, y):
        out = super().forward(x, y)
        if self.poison:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_and_keeps_last_good_files(tmp_path):
    settings = DataSettings(name="digits", batch_size=64)
    data = load_data(settings)
    train_loader, eval_loader = build_loaders(data, settings)
    model = create_model("resnet8", num_classes=10, in_channels=1)
    task = _NanAfterFirstEpoch(model)
    cfg = TrainSettings(epochs=3, progress=False)
    with pytest.raises(
        TrainingDivergedError, match=r"nan at epoch 2, step 1/23.*kept the last good checkpoint"
    ):
        fit(
            task,
            train_loader,
            eval_loader,
            cfg,
            out_dir=tmp_path,
            device=torch.device("cpu"),
            config_hash="h",
            log=lambda _m: None,
        )
    assert read_header(tmp_path / "last.safetensors").metrics["epoch"] == 1
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["task"].values() if v.is_floating_point())


def test_malicious_state_pt_is_refused_without_running(digits_model, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    from compress.outputs import make_owned_dir

    out = make_owned_dir(tmp_path / "run", kind="train")  # a run folder of compress's own
    with open(out / "state.pt", "wb") as fh:
        pickle.dump({"format": "compress-state", "payload": Evil()}, fh)
    cfg = build(TrainConfig, {**FAST_DIGITS, "output": str(out), "resume": True})
    with pytest.raises(CompressError, match="not a safe training state"):
        train(cfg, log=lambda _m: None)
    assert not marker.exists()


def test_summary_contract_fields(digits_model):
    summary = json.loads((digits_model.parent / "summary.json").read_text())
    for key in ("top1", "top1_last", "best_epoch", "epochs", "params", "config_hash"):
        assert key in summary
    cfg = yaml.safe_load((digits_model.parent / "config.yaml").read_text())
    assert config_hash(build(TrainConfig, cfg)) == summary["config_hash"]


def test_an_explicit_thread_count_is_used_and_given_back_when_the_run_ends(tmp_path):
    before = torch.get_num_threads()
    cfg = {**FAST_DIGITS, "epochs": 1, "threads": 2, "output": str(tmp_path / "r")}
    summary = train(build(TrainConfig, cfg), log=lambda _m: None)
    assert summary["environment"]["threads"] == 2
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("omp", [None, "2"])
def test_the_default_leaves_one_cpu_free_unless_omp_num_threads_says(tmp_path, omp):
    """A fresh process, as a user's: no OMP_NUM_THREADS → one thread fewer than the CPUs it
    may use (at least 1, at most torch's default); OMP_NUM_THREADS=2 → 2, as torch reads it."""
    code = (
        "import json, sys, torch\n"
        "from compress.config import build\n"
        "from compress.train import TrainConfig, train\n"
        "from compress.engine.threads import usable_cpus\n"
        "from tests.conftest import FAST_DIGITS\n"
        "first = torch.get_num_threads()\n"
        "cfg = {**FAST_DIGITS, 'epochs': 1, 'output': sys.argv[1]}\n"
        "s = train(build(TrainConfig, cfg), log=lambda _m: None)\n"
        "print(json.dumps([first, usable_cpus(), s['environment']['threads']]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    first, cpus, used = json.loads(out.stdout.strip().splitlines()[-1])
    assert used == (2 if omp else max(1, min(first, cpus - 1)))
