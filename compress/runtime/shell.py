"""Small system helpers: read a file, run a command, both returning None on failure."""

import shutil
import subprocess
from typing import List, Optional


def read_text(path: str) -> Optional[str]:
    """The text of a file, or None when it cannot be read."""
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def run_command(cmd: List[str], timeout: float = 10.0) -> Optional[str]:
    """A command's standard output, or None when it is absent or fails to run."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
