"""The prepared GPU command runs, at a tiny size, on the CPU (so it cannot rot before a GPU is lent).

``GPU_CHECK_CPU=1 scripts/gpu-check.sh`` goes through the same path as on the lent machine —
the carried-wheel install when ``.whl/`` holds wheels, ``PYTHONPATH`` instead of an install,
the three timed parts writing under the output folder — with each part at a smoke size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    from compress.data.fashion_mnist import candidate_dirs

    if not any((d / "train-images-idx3-ubyte.gz").exists() for d in candidate_dirs(None)):
        pytest.skip("needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_CPU": "1", "PYTHON": sys.executable, "OUT": str(out)}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    summary = (out / "summary.txt").read_text()
    assert [line.split(":")[1].strip().split()[1] for line in summary.splitlines()] == ["0"] * 3
    assert "compress" in (out / "environment.txt").read_text()
    assert (out / "gpu-tests.xml").exists()  # part a collected the GPU tests
    speed = json.loads((out / "speed" / "gpu_distill.json").read_text())["rows"]
    assert "baseline (mdistiller loop, batch 64)" in speed and "r2kd faithful, batch 64" in speed
    assert all(r["images_per_s"] > 0 and r["projected_240_epochs_min"] > 0 for r in speed.values())
    assert (out / "speed" / "gpu_distill.md").read_text().count("\n| ") == 7  # header + 6 rows
    accuracy = json.loads((out / "accuracy" / "gpu_accuracy.json").read_text())
    assert list(accuracy) == ["teacher resnet20", "none", "kd", "dist", "r2kd", "r2kd faithful"]
    assert not (out / "speed" / "data").exists()  # only the tables come back
