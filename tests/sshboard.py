"""A board for the tests: a real ``sshd`` on the loopback address.

It runs with a generated host key and user key (``ssh-keygen``), on a free port, with
its own ``AuthorizedKeysFile`` and known-hosts file (host key checked, nothing of the
user's ``~/.ssh`` read or written), and ``TMPDIR`` of its sessions set to a directory
the tests can look into. Its Python is the test run's (the tox env's in CI), which has
ai-edge-litert: the board runs the same measurement child as the gate.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from compressgate.measure.remote import Host

SSHD = Path("/usr/sbin/sshd")


def missing() -> str | None:
    """Why no loopback board can be started here (None: it can)."""
    if not SSHD.exists():
        return f"{SSHD} not installed (apt-get install openssh-server; .ci/run does)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "ssh / ssh-keygen not installed (apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Board:
    host: Host
    # The sessions' TMPDIR: where the per-run directories are made.
    tmp: Path
    directory: Path

    def python_without_runtime(self) -> str:
        """A Python on the board that cannot import ai-edge-litert (no site-packages)."""
        path = self.directory / "bare-python"
        path.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
        path.chmod(0o755)
        return str(path)


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "compressgate-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def loopback_board(directory: Path, name: str = "loopback") -> Iterator[Board]:
    """Start ``sshd -D`` on 127.0.0.1 and yield a ``Board`` whose host logs in as the
    current user with a generated key; the server stops on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "board-tmp"
    tmp.mkdir()
    host_public = _keygen(directory / "host_key")
    (directory / "authorized_keys").write_text(_keygen(directory / "user_key") + "\n")
    port = free_port()
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1",
        f"HostKey {directory / 'host_key'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        f"PidFile {directory / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", f"SetEnv TMPDIR={tmp}", "LogLevel ERROR",
    ]) + "\n")
    if os.geteuid() == 0:  # sshd as root wants its privilege-separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (directory / "sshd.log").open("w")
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, server, directory / "sshd.log")
        user = pwd.getpwuid(os.getuid()).pw_name  # not $USER: the account sshd checks
        host = Host(name, f"{user}@127.0.0.1", sys.executable, port=port,
                    identity=str(directory / "user_key"),
                    options=(f"UserKnownHostsFile={directory / 'known_hosts'}",
                             "StrictHostKeyChecking=yes", "LogLevel=ERROR"))
        yield Board(host, tmp, directory)
    finally:
        server.terminate()
        server.wait()
        log.close()


def _wait_listening(port: int, server: subprocess.Popen, log: Path) -> None:
    """Until sshd accepts connections (it binds within moments of starting)."""
    while server.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(0.05)
    raise RuntimeError(f"sshd exited ({server.returncode}): {log.read_text().strip()[-300:]}")
