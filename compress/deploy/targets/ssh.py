"""``ssh://[user@]host[:port]``: a device reached with the system ``ssh``/``scp``.

The model, a compact evaluation set and the device runtime (one zipapp, ``agent.pyz``, built
from `compress.runtime`) go into a temporary directory on the device; the runtime runs there and
its JSON comes back; the directory is removed. The user's keys, ``~/.ssh/config`` and host-key
checking apply unchanged (an extra config file can be given with ``ssh_config``); compress
never turns host-key checking off.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.deploy.targets.base import AgentTarget, TargetSettings, parse_agent_output, register
from compress.errors import CompressError


@register
@dataclass
class SSHTarget(AgentTarget):
    """A device reached over SSH: ``ssh://[user@]host[:port]``."""

    scheme = "ssh"

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

    @classmethod
    def from_url(cls, url: str, settings: TargetSettings) -> SSHTarget:
        """``ssh://[user@]host[:port]`` (an IPv6 host in brackets)."""
        m = _SSH_URL.fullmatch(url)
        if not m:
            raise CompressError(
                f"bad --target '{url}': use 'local' or 'ssh://user@host[:port]' (e.g. "
                "ssh://nvidia@192.168.1.20)"
            )
        for part, label in ((m["user"], "user"), (m["host"], "host")):
            if part and part.lstrip("[").startswith("-"):
                raise CompressError(
                    f"bad --target '{url}': a {label} name cannot start with '-' (ssh would read "
                    "it as an option)"
                )
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise CompressError(f"bad --target '{url}': port {port} is out of range")
        return cls(
            host=m["host"].strip("[]"),
            user=m["user"],
            port=port,
            ssh_config=settings.ssh_config,
            python=settings.remote_python,
        )


_SSH_URL = re.compile(
    r"ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\s\[\]]+)(?::(?P<port>\d+))?/?"
)
