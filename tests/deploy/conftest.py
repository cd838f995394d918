"""A real OpenSSH server on 127.0.0.1 for the SSH-target tests (skipped where sshd is absent)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_wrapper(directory: Path, name: str, blocked: list[str]) -> Path:
    """An interpreter that cannot import `blocked` modules (runs a script like ``python3 script ...``)."""
    block = "; ".join(f"sys.modules[{m!r}] = None" for m in blocked)
    code = f"import sys, runpy; {block}; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    path = directory / name
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}" "$@"\n')
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip(
            "openssh-server / openssh-client not installed (apt-get install openssh-server)"
        )
    d = tmp_path_factory.mktemp("sshd")
    user = getpass.getuser()
    port = _free_port()
    for key in ("host_ed25519", "client_ed25519"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    (d / "authorized_keys").write_text((d / "client_ed25519.pub").read_text())
    host_pub = (d / "host_ed25519.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    sftp = next(
        (
            p
            for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
            if Path(p).exists()
        ),
        "internal-sftp",
    )
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"AllowUsers {user}\nPrintMotd no\nSubsystem sftp {sftp}\n"
    )
    (d / "ssh_config").write_text(
        f"Host 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/client_ed25519\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.skip(f"sshd did not start: {proc.stderr.read().strip()[-300:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip("sshd did not listen within 15 s")
                time.sleep(0.1)
        yield {
            "url": f"ssh://{user}@127.0.0.1:{port}",
            "config": str(d / "ssh_config"),
            "python_no_torch": str(python_wrapper(d, "python-no-torch", ["torch"])),
            "python_no_ort": str(python_wrapper(d, "python-no-ort", ["torch", "onnxruntime"])),
        }
    finally:
        proc.terminate()  # stopped by PID
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
