"""The Markdown tables verbs log (export's validation, prune's report) render on a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from compress.cli.common import markdown_blocks

MESSAGE = (
    "onnx: m.onnx (1.00 MB, fp32) in 0.1 s\n| check | value |\n|---|---|\n| verdict | passed |"
)
SCRIPT = f"from compress.cli.common import echo; echo({MESSAGE!r})"


def test_markdown_blocks_split_plain_lines_from_table_lines():
    blocks = markdown_blocks(MESSAGE)
    assert [t for t, _ in blocks] == [False, True]
    assert blocks[1][1].splitlines()[1] == "|---|---|"


def _read_all(fd: int) -> bytes:
    out = b""
    for _ in range(200):  # bounded: the child writes a few lines and exits
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_logged_table_renders_on_a_terminal_and_stays_markdown_in_a_pipe():
    piped = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert "|---|---|" in piped.stdout and "| verdict | passed |" in piped.stdout

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    try:
        text = _read_all(master).decode("utf-8", "replace")
    finally:
        proc.wait(timeout=60)
        os.close(master)
    assert proc.returncode == 0
    assert "onnx: m.onnx" in text and "passed" in text
    assert "|---|" not in text and "| verdict |" not in text  # drawn by rich, not raw pipes
