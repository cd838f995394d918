"""``compress study --executor ray`` on a real Ray cluster on 127.0.0.1: the local table, a worker
killed (by PID) mid-cell and retried, a failed cell reported, not retried."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from compress.cli import cli
from tests.test_study import STUDY

ray = pytest.importorskip("ray", reason="needs the [ray] extra")

pytestmark = pytest.mark.slow  # a Ray cluster and two grids: about two minutes on 2 cores

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_pids(temp_dir: str) -> list[int]:
    """Every process of the cluster: all of them name its temp dir on their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if temp_dir in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def cluster():
    """A Ray head with 2 CPUs on 127.0.0.1 at a free high port; stopped by PID afterwards."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are long
    port = _free_port()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1",
             "--port", str(port), "--num-cpus", "2", "--num-gpus", "0",
             "--include-dashboard", "false", "--temp-dir", temp_dir, "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", env, temp_dir
    finally:
        deadline = time.monotonic() + 60  # the cluster's processes, by PID, until none is left
        while (pids := _ray_pids(temp_dir)) and time.monotonic() < deadline:
            for pid in pids:  # again each round: a raylet may have started a worker meanwhile
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _listening_off_loopback(pids: list[int]) -> list[str]:
    """Listening TCP sockets of `pids` bound to anything but 127.0.0.1."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    bad = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and inode in inodes:  # LISTEN
                host = local.split(":")[0]
                if host not in ("0100007F", "0000000000000000FFFF00000100007F"):
                    bad.append(local)
    return bad


def test_ray_executor_gives_the_local_table_and_retries_a_killed_worker(tmp_path, cluster):
    address, env, temp_dir = cluster
    assert not _listening_off_loopback(_ray_pids(temp_dir))  # loopback only, ever
    study = {**STUDY, "resources": {"cpus": 1}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))

    local = CliRunner().invoke(cli, ["study", str(path), "-o", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output

    out = tmp_path / "ray"
    dry = CliRunner().invoke(
        cli, ["study", str(path), "-o", str(out), "--executor", f"ray:{address}", "--dry-run"]
    )
    assert dry.exit_code == 0 and f"Ray ({address}): any node with 1 CPU(s) free" in dry.output
    proc = subprocess.Popen(
        [str(BIN / "compress"), "study", str(path), "-o", str(out), "--executor", f"ray:{address}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    killed = None
    try:
        deadline = time.monotonic() + 240
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            for claim in sorted((out / ".claims").glob("*seed*.lock")):
                try:
                    pid = int(claim.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                os.kill(pid, signal.SIGSTOP)  # stopped: it cannot finish behind our back
                cell = out / "cells" / Path(*claim.stem.split("__"))
                still = claim.exists() and claim.read_text().split()[:1] == [str(pid)]
                if still and not (cell / "cell.json").exists():
                    os.kill(pid, signal.SIGKILL)  # mid-cell, holding its claim
                    killed = claim.stem
                    break
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, output
    assert proc.returncode == 0, output
    assert (out / "study.md").read_text() == (tmp_path / "local" / "study.md").read_text()
    record = json.loads((out / "study.json").read_text())
    by_name = {
        f"label_noise-{c['value']:g}__{c['method']}__seed{c['seed']}": c for c in record["cells"]
    }
    assert by_name[killed]["attempts"] == 2, output  # the killed cell ran again, once
    assert all(c["node"] and c["seconds"] > 0 for c in record["cells"])
    assert record["environment"]["executor"] == f"ray:{address}"
    assert "(attempt 2)" in output and "8 done, 0 running, 0 failed, 0 pending" in output

    # a cell failing for a user reason is reported in the table, once, not retried
    bad = {**study, "values": [0.0], "methods": ["none", "fitnet"], "seeds": [0],
           "method_args": {"fitnet": {"no_such_setting": 1}}}  # fmt: skip
    path.write_text(yaml.safe_dump(bad))
    failed = CliRunner().invoke(
        cli, ["study", str(path), "-o", str(tmp_path / "bad"), "--executor", f"ray:{address}"]
    )
    assert failed.exit_code != 0 and "1 cell(s) failed" in failed.output, failed.output
    table = (tmp_path / "bad" / "study.md").read_text()
    assert "| fitnet | failed |" in table and "Failed cells" in table
    attempts = tmp_path / "bad" / ".claims" / "label_noise-0__fitnet__seed0.attempts"
    assert attempts.read_text().strip() == "1"
