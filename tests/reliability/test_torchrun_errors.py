"""Under torchrun, one rank's user mistake stops every rank with the same line, at once.

Real torchrun with two CPU processes (Gloo). A small launcher gives each rank its own command
line, the way a misconfigured node would: one rank's data folder is broken, or the ranks see
different data.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import write_imagefolder

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

LAUNCHER = """
import os, sys
from compress.cli import main

rank = int(os.environ["RANK"])
good, other, out = sys.argv[1:4]
data = good if rank == 0 else other
sys.argv = ["compress", "train", "--model", "resnet8", "--dataset", "imagefolder",
            "--data-dir", data, "--image-size", "16", "--epochs", "1", "--device", "cpu",
            "--set", "data.workers=0", "--set", "progress=false", "-o", out]
main()
"""


def launch(tmp_path, other):
    good = write_imagefolder(tmp_path / "good", classes=2, train_per_class=8)
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    env = {"COMPRESS_DIST_TIMEOUT": "120", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    return subprocess.run(
        [*TORCHRUN, str(script), str(good), str(other), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def errors(result) -> list[str]:
    text = result.stdout + result.stderr
    return [line for line in text.splitlines() if line.startswith("Error:")]


def test_one_ranks_data_error_stops_both_ranks_with_the_same_line(tmp_path):
    result = launch(tmp_path, tmp_path / "missing")
    lines = errors(result)
    assert result.returncode != 0
    assert len(lines) == 2 and lines[0] == lines[1], result.stdout + result.stderr
    assert lines[0].startswith("Error: rank 1:") and "has no train/ or val/ folder" in lines[0]
    # torchrun prints its own report of the failed workers; no frame of compress is in it
    frames = [
        ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip().startswith("File")
    ]
    assert not [ln for ln in frames if "/compress/" in ln], frames


def test_ranks_that_see_different_data_are_told_so(tmp_path):
    other = write_imagefolder(tmp_path / "other", classes=2, train_per_class=20)
    result = launch(tmp_path, other)
    lines = errors(result)
    assert result.returncode != 0 and len(lines) == 2 and lines[0] == lines[1], (
        result.stdout + result.stderr
    )
    assert "see different training data" in lines[0]
    assert "rank 0: 16 images" in lines[0] and "rank 1: 40 images" in lines[0]
