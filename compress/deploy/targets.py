"""Where a model is profiled: this machine, or a device reached with the system ``ssh``/``scp``.

The SSH target copies the model, a compact evaluation set and the device runtime (one zipapp,
``agent.pyz``, built from `compress.runtime`) into a temporary directory on the device, runs it
there, reads its JSON and removes the directory. The user's keys, ``~/.ssh/config`` and host-key checking apply unchanged (an extra
config file can be given with ``ssh_config``); compress never turns host-key checking off.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import CompressError


@dataclass
class LocalTarget:
    """This machine."""

    def __str__(self) -> str:
        return "local"


@dataclass
class SSHTarget:
    """A device reached over SSH: ``ssh://[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None
    ssh_config: str | None = None
    python: str = "python3"
    connect_timeout: int = 15

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"

    @property
    def destination(self) -> str:
        """``user@host`` for ssh/scp."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.ssh_config:
            opts = ["-F", self.ssh_config, *opts]
        if self.port:
            opts += [port_flag, str(self.port)]
        return opts

    def _ssh(self, command: str, *, timeout: float) -> subprocess.CompletedProcess:
        # "--" ends ssh's options: a destination can never be read as one (-oProxyCommand=...)
        cmd = ["ssh", *self._options("-p"), "--", self.destination, command]
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise CompressError(
                f"{self}: the remote command did not finish within {timeout:.0f} s"
            ) from None

    def _fail_unreachable(self, proc: subprocess.CompletedProcess) -> None:
        if proc.returncode == 255:  # ssh's own failure: connection, authentication, host key
            reason = (proc.stderr.strip().splitlines() or ["ssh failed"])[-1]
            raise CompressError(
                f"cannot reach {self} over ssh ({reason}); check the address, that your key is accepted "
                "(ssh must log in without a password) and that the host key is known"
            )

    def check_tools(self) -> None:
        """The local ssh and scp clients must exist."""
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise CompressError(
                    f"'{tool}' is not installed here; install OpenSSH's client to use ssh targets"
                )

    def run_agent(
        self, files: list[Path], args: list[str], *, timeout: float = 1800.0
    ) -> dict[str, Any]:
        """Copy `files` and the runtime zipapp to a fresh remote directory, run it with `args`.

        File names in `args` are relative to that directory. Returns the runtime's JSON.
        """
        import tempfile

        from compress.deploy.zipapp import ZIPAPP_NAME, build_zipapp

        self.check_tools()
        made = self._ssh("mktemp -d -t compress-agent.XXXXXX", timeout=60)
        self._fail_unreachable(made)
        if made.returncode != 0 or not made.stdout.strip():
            raise CompressError(
                f"{self}: could not create a temporary directory: {made.stderr.strip()}"
            )
        remote = made.stdout.strip().splitlines()[-1]
        local = tempfile.TemporaryDirectory()
        try:
            sources = [build_zipapp(Path(local.name) / ZIPAPP_NAME), *files]
            cmd = [
                "scp",
                "-q",
                *self._options("-P"),
                "--",
                *map(str, sources),
                f"{self.destination}:{remote}/",
            ]
            copied = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
            if copied.returncode != 0:
                raise CompressError(f"{self}: copying files failed: {copied.stderr.strip()}")
            line = " ".join(shlex.quote(a) for a in args)
            proc = self._ssh(
                f"cd {shlex.quote(remote)} && {self.python} {ZIPAPP_NAME} {line}", timeout=timeout
            )
            self._fail_unreachable(proc)
            return parse_agent_output(proc, str(self))
        finally:
            local.cleanup()
            self._ssh(f"rm -rf {shlex.quote(remote)}", timeout=60)


def parse_agent_output(proc: subprocess.CompletedProcess, where: str) -> dict[str, Any]:
    """The agent's JSON from its stdout, or a one-line error with what went wrong."""
    text = proc.stdout.strip()
    data: Any = None
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
    if isinstance(data, dict) and "error" in data:
        raise CompressError(f"on {where}: {data['error']}")
    if proc.returncode != 0 or not isinstance(data, dict):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named" in err or "not found" in err:
            raise CompressError(
                f"on {where}: the agent could not start ({err}); it needs python3 with numpy there"
            )
        raise CompressError(f"on {where}: the agent failed (exit {proc.returncode}): {err}")
    return data


_SSH_URL = re.compile(
    r"ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\s\[\]]+)(?::(?P<port>\d+))?/?"
)


def parse_target(
    text: str | None, *, ssh_config: str | None = None, python: str = "python3"
) -> LocalTarget | SSHTarget:
    """``local`` (or empty) → `LocalTarget`; ``ssh://[user@]host[:port]`` → `SSHTarget`.

    Raises:
        CompressError: for anything else, with the accepted forms.
    """
    value = (text or "local").strip()
    if value == "local":
        return LocalTarget()
    m = _SSH_URL.fullmatch(value)
    if not m:
        raise CompressError(
            f"bad --target '{value}': use 'local' or 'ssh://user@host[:port]' (e.g. ssh://nvidia@192.168.1.20)"
        )
    for part, label in ((m["user"], "user"), (m["host"], "host")):
        if part and part.lstrip("[").startswith("-"):
            raise CompressError(
                f"bad --target '{value}': a {label} name cannot start with '-' (ssh would read it "
                "as an option)"
            )
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise CompressError(f"bad --target '{value}': port {port} is out of range")
    return SSHTarget(
        host=m["host"].strip("[]"), user=m["user"], port=port, ssh_config=ssh_config, python=python
    )
