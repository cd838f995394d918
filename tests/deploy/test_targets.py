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
