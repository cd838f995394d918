"""The benchmark scripts that need a GPU still run, at a smoke size, on the CPU (so they cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_distill_smoke_on_the_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_distill.py"), "--smoke", "--device", "cpu",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_distill.json").read_text())["rows"]
    assert "baseline (mdistiller loop, batch 64)" in rows and "r2kd faithful, batch 64" in rows
    assert all(r["images_per_s"] > 0 and r["projected_240_epochs_min"] > 0 for r in rows.values())
    assert "| run | images/s | × baseline |" in done.stdout
