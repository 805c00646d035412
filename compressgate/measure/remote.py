"""Measure ``.tflite`` files on a board over SSH: the target device, not the CI machine.

One ``ssh`` session per measurement (key auth only: ``BatchMode=yes``, so a missing key
fails at once instead of asking for a password). Its command, run by ``sh`` on the
board, makes a per-run directory (``mktemp -d``), removes it on any exit (``trap``),
unpacks what this side streams on stdin (a tar: the files, the test split, a plan, and
the measuring modules of this package) and runs ``compressgate.measure.board`` with the
board's Python, which measures under an ``flock`` on the board. Nothing but that lock
file (``board.LOCK``) outlives the run.

Whatever goes wrong is one line (``BoardUnavailable``) naming the board: unreachable,
no Python at the configured path, no ai-edge-litert there, busy, failed or timed out.
"""

from __future__ import annotations

import io
import json
import math
import shlex
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.measure import board
from compressgate.measure.machine import machine_class

# sh exit codes of the remote command (ssh itself exits 255 when it cannot connect).
UNREACHABLE = 255
NO_PYTHON = 91
NO_RUNTIME = 92
NO_TEMP = 93
# The modules the board child imports, shipped as they are here (no install there).
_PACKAGE = Path(__file__).resolve().parents[1]
_SHIPPED = ("errors.py", "native.py", "measure/__init__.py", "measure/board.py",
            "measure/flatbuffer.py", "measure/litert.py", "measure/machine.py",
            "measure/memory.py", "measure/processes.py")
# The package's own __init__ imports the recipes (pydantic): the board gets a stub.
_STUB_INIT = b'"""compressgate\'s measuring modules, copied to a board for one run."""\n'

_SCRIPT = """\
py={python}
[ -x "$py" ] || {{ echo "no executable Python at $py" >&2; exit {no_python}; }}
if ! err=$("$py" -c 'import numpy, ai_edge_litert.interpreter' 2>&1); then
  echo "$py lacks the runtime ($(printf '%s\\n' "$err" | tail -n 1)); \
install it there: $py -m pip install ai-edge-litert" >&2
  exit {no_runtime}
fi
d=$(mktemp -d "${{TMPDIR:-/tmp}}/compressgate-run.XXXXXX") || exit {no_temp}
trap 'rm -rf "$d"' EXIT
trap 'exit 129' HUP INT TERM PIPE
tar -xf - -C "$d" || exit 1
cd "$d" && TMPDIR="$d" PYTHONPATH="$d/src" "$py" -m compressgate.measure.board "$d/work"
"""


class BoardUnavailable(RuntimeError):
    """The board measured nothing; the message is the one line saying why."""


@dataclass(frozen=True)
class Host:
    """A board reached over SSH, and the Python on it that has ai-edge-litert."""

    name: str
    ssh: str
    python: str
    port: int | None = None
    identity: str | None = None
    # Further ``ssh -o`` options ("StrictHostKeyChecking=accept-new", ...).
    options: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    # The whole measurement, lock wait included.
    timeout: float = 1800.0
    # Seconds to wait for another gate's lock on the board (None: as long as it takes).
    lock_timeout: float | None = None

    @property
    def label(self) -> str:
        return f"board {self.name} ({self.ssh})"

    def command(self, remote: str) -> list[str]:
        """The ``ssh`` argv running ``remote`` on the board (``--``: an ``ssh`` value
        starting with "-" is a destination, never an option)."""
        argv = ["ssh", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.identity is not None:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            argv += ["-o", option]
        return [*argv, "--", self.ssh, remote]

    def script(self) -> str:
        return _SCRIPT.format(python=shlex.quote(self.python), no_python=NO_PYTHON,
                              no_runtime=NO_RUNTIME, no_temp=NO_TEMP)


def board_class(name: str, fingerprint: dict[str, Any]) -> str:
    """The machine class a board's figures are recorded under: its kernel-selecting
    class, named after the board (its runtime and OS are its own, even where a CI
    machine shares its ISA)."""
    return f"{machine_class(fingerprint)} (board {name})"


@dataclass(frozen=True)
class BoardMeasurement:
    """What one board measured: its fingerprint and runtime, outputs on the test split
    per file, peak memory per file (bytes, or why not), and latency pairs per
    (candidate, reference) (the fields of ``LatencyPairs``)."""

    host: Host
    fingerprint: dict[str, Any]
    versions: dict[str, str]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    memory: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)
    latency: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def machine_class(self) -> str:
        return board_class(self.host.name, self.fingerprint)

    def describe(self) -> str:
        fp = self.fingerprint
        return (f"{self.host.label}: class {self.machine_class}; {fp.get('name')}, "
                f"{fp.get('cores')} cores; ai-edge-litert "
                f"{self.versions.get('ai-edge-litert')}, Python {self.versions.get('python')}")


def _archive(files: dict[str, bytes], x: np.ndarray, plan: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        add("src/compressgate/__init__.py", _STUB_INIT)
        for module in _SHIPPED:
            add(f"src/compressgate/{module}", (_PACKAGE / module).read_bytes())
        for name, data in files.items():
            add(f"work/{name}.tflite", data)
        inputs = io.BytesIO()
        np.save(inputs, np.ascontiguousarray(x), allow_pickle=False)
        add(f"work/{board.INPUTS}", inputs.getvalue())
        add(f"work/{board.PLAN}", json.dumps(plan).encode())
    return buffer.getvalue()


def _why(host: Host, code: int, stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1][:300] if lines else f"exit code {code}"
    if code == UNREACHABLE:
        return f"{host.label}: unreachable: {last}"
    if code in (NO_PYTHON, NO_RUNTIME):
        return f"{host.label}: missing runtime: {last}"
    if code == board.BUSY:
        return f"{host.label}: {last}"
    if code == NO_TEMP:
        return f"{host.label}: mktemp -d failed: {last}"
    return f"{host.label}: measurement failed: {last}"


def measure(host: Host, files: dict[str, bytes], x: np.ndarray, *,
            outputs: tuple[str, ...] = (), memory: tuple[str, ...] = (),
            latency: tuple[tuple[str, str], ...] = (), pairs: int = 42,
            batch: int | None = None) -> BoardMeasurement:
    """Measure ``files`` (name -> ``.tflite`` bytes) on ``host``: outputs of the files
    named in ``outputs`` on every row of ``x``, peak memory of those in ``memory``, and
    interleaved pairs of each (candidate, reference) in ``latency`` on ``x[:1]``.
    Raises ``BoardUnavailable`` (one line) when the board measured nothing."""
    plan = {"files": sorted(files), "outputs": list(outputs), "memory": list(memory),
            "latency": [list(p) for p in latency], "pairs": pairs, "batch": batch,
            "lock": board.LOCK, "lock_timeout": host.lock_timeout}
    try:
        proc = subprocess.run(host.command(host.script()),
                              input=_archive(files, np.asarray(x, np.float32), plan),
                              capture_output=True, timeout=host.timeout, check=False)
    except subprocess.TimeoutExpired:
        # ssh is killed; the board's shell then gets a hangup and its trap cleans up.
        raise BoardUnavailable(f"{host.label}: timed out after {host.timeout:g} s") from None
    except OSError as exc:
        raise BoardUnavailable(f"{host.label}: cannot run ssh: {exc}") from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BoardUnavailable(_why(host, proc.returncode, stderr))
    try:
        doc = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BoardUnavailable(f"{host.label}: measurement failed: no result printed "
                               f"({stderr.strip()[-200:] or 'no output'})") from None
    return BoardMeasurement(
        host, doc["fingerprint"], doc["versions"],
        outputs={k: board.decode(v) for k, v in doc["outputs"].items()},
        memory={k: (v[0], v[1]) for k, v in doc["memory"].items()},
        latency={(c, r): {**p, "reference_ms": tuple(p["reference_ms"]),
                          "candidate_ms": tuple(p["candidate_ms"])}
                 for c, r, p in doc["latency"]})
