"""``subprocess://[PYTHON]``: the device runtime in a separate Python on this machine.

Runs exactly what a device runs — the zipapp of `compress.runtime`, with copies of the files in
a fresh folder, its JSON read back — but in a local interpreter (``subprocess://`` uses this
one; ``subprocess:///usr/bin/python3.11`` another, e.g. one without torch). Useful to check the
device path without a device, and the proof that a new kind of target is one file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.deploy.targets.base import AgentTarget, TargetSettings, parse_agent_output, register
from compress.errors import CompressError


@register
@dataclass
class SubprocessTarget(AgentTarget):
    """A separate local Python running the device runtime."""

    python: str = sys.executable
    timeout: float = 1800.0
    scheme = "subprocess"

    @classmethod
    def from_url(cls, url: str, settings: TargetSettings) -> SubprocessTarget:  # noqa: D102
        python = url[len("subprocess://") :] or sys.executable
        if shutil.which(python) is None:
            raise CompressError(f"bad --target '{url}': no Python at '{python}'")
        return cls(python=python)

    def __str__(self) -> str:
        return f"subprocess://{self.python}"

    def run_agent(self, files: list[Path], args: list[str]) -> dict[str, Any]:  # noqa: D102
        from compress.deploy.zipapp import ZIPAPP_NAME, build_zipapp

        with tempfile.TemporaryDirectory(prefix="compress-agent-") as folder:
            work = Path(folder)
            build_zipapp(work / ZIPAPP_NAME)
            for f in files:
                shutil.copyfile(f, work / Path(f).name)
            try:
                proc = subprocess.run(
                    [self.python, ZIPAPP_NAME, *args],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise CompressError(
                    f"{self}: the runtime did not finish in {self.timeout:.0f} s"
                ) from None
            return parse_agent_output(proc, str(self))
