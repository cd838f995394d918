from __future__ import annotations

import shutil
import socket

import pytest

from compress.deploy.targets import LocalTarget, SSHTarget, parse_target
from compress.errors import CompressError


def test_parse_target_forms():
    assert isinstance(parse_target(None), LocalTarget) and isinstance(
        parse_target("local"), LocalTarget
    )
    t = parse_target("ssh://nvidia@192.168.1.20:2222")
    assert (t.user, t.host, t.port) == ("nvidia", "192.168.1.20", 2222) and str(
        t
    ) == "ssh://nvidia@192.168.1.20:2222"
    t = parse_target("ssh://jetson")
    assert (t.user, t.host, t.port) == (None, "jetson", None) and t.destination == "jetson"
    assert parse_target("ssh://u@[::1]:22").host == "::1"


@pytest.mark.parametrize(
    "bad", ["jetson", "http://host", "ssh://", "ssh://u@h:70000", "ssh://u@h:x", "ssh://a b"]
)
def test_bad_target_urls(bad):
    with pytest.raises(CompressError, match="--target"):
        parse_target(bad)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client installed")
def test_unreachable_host_is_a_one_line_error(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = SSHTarget(host="127.0.0.1", port=port, connect_timeout=5)
    with pytest.raises(
        CompressError, match=r"cannot reach ssh://127\.0\.0\.1:\d+ over ssh \(.*refused"
    ):
        target.run_agent([], ["env"])


def test_a_third_target_is_one_file_and_runs_the_device_runtime(digits_model, tmp_path):
    """``subprocess://`` (compress/deploy/targets/subprocess.py, registered by its own module)
    runs the zipapp in a separate Python, as a device does, and gives the local numbers."""
    import json

    from click.testing import CliRunner

    from compress.cli import cli
    from compress.deploy.targets import TARGETS

    assert {"local", "ssh", "subprocess"} <= set(TARGETS.names())
    results = {}
    for target in ("local", "subprocess://"):
        out = tmp_path / f"{target[:5]}.json"
        args = ["profile", str(digits_model), "--runtime", "onnxruntime", "--target", target,
                "--batch", "1", "--iters", "3", "--duration", "0", "--json", str(out)]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        results[target] = json.loads(out.read_text())
    sub = results["subprocess://"]
    assert sub["target"].startswith("subprocess://") and sub["runtime"] == "onnxruntime"
    assert sub["top1"] == results["local"]["top1"] and sub["batches"]["1"]["runs"] >= 3
    with pytest.raises(CompressError, match="no Python at"):
        parse_target("subprocess:///no/such/python")
