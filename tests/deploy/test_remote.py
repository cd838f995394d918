"""Profiling over SSH against a real OpenSSH server on 127.0.0.1 (see conftest.sshd)."""

from __future__ import annotations

import glob
import json

from click.testing import CliRunner

from compress.cli import cli


def _export(digits_model, tmp_path):
    out = tmp_path / "e"
    result = CliRunner().invoke(
        cli, ["export", str(digits_model), "--output", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return out / "model.onnx"


def test_profile_over_ssh_matches_a_local_run(sshd, digits_model, tmp_path):
    onnx = _export(digits_model, tmp_path)
    before = set(glob.glob("/tmp/compress-agent.*"))
    args = ["profile", str(onnx), "--batch", "1,4", "--iters", "5", "--warmup", "1"]
    local = CliRunner().invoke(
        cli, [*args, "--json", str(tmp_path / "local.json")], catch_exceptions=False
    )
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(
        cli,
        [
            *args,
            "--target",
            sshd["url"],
            "--ssh-config",
            sshd["config"],
            "--remote-python",
            sshd["python_no_torch"],
            "--json",
            str(tmp_path / "remote.json"),
        ],
        catch_exceptions=False,
    )
    assert remote.exit_code == 0, remote.output
    a = json.loads((tmp_path / "local.json").read_text())
    b = json.loads((tmp_path / "remote.json").read_text())
    assert set(a) == set(b)
    assert set(b["batches"]) == {"1", "4"}
    for key in ("p50_ms", "p90_ms", "p99_ms", "throughput"):
        assert b["batches"]["4"][key] > 0
    assert b["top1"] == a["top1"] > 0.9  # same model, same images, same result
    assert b["target"] == sshd["url"] and b["runtime"] == "onnxruntime"
    assert (
        b["environment"]["versions"]["torch"] is None
    )  # the agent ran where torch cannot be imported
    assert b["environment"]["versions"]["onnxruntime"]
    assert set(glob.glob("/tmp/compress-agent.*")) == before  # the remote directory was removed


def test_missing_runtime_on_the_device_is_a_one_line_error(sshd, digits_model, tmp_path):
    onnx = _export(digits_model, tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "profile",
            str(onnx),
            "--iters",
            "2",
            "--target",
            sshd["url"],
            "--ssh-config",
            sshd["config"],
            "--remote-python",
            sshd["python_no_ort"],
        ],
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "onnxruntime is not installed on this machine" in errors[0]
    assert "Traceback" not in result.output


def test_torch_and_engines_are_refused_for_remote_targets(sshd, digits_model, tmp_path):
    result = CliRunner().invoke(
        cli, ["profile", str(digits_model), "--target", sshd["url"], "--ssh-config", sshd["config"]]
    )
    assert result.exit_code == 2 and "device agent runs onnxruntime and tensorrt" in result.output
