"""The measuring child a board runs: ``python -m compressgate.measure.board DIR``.

``compressgate.measure.remote`` copies the ``.tflite`` files, the test split and a plan
into ``DIR`` on the board, with the modules this child imports (this package's measuring
modules, no TensorFlow, no scipy, no pydantic). Here, on the board, it runs the very
children the gate runs locally: ``processes`` for interleaved latency pairs (one fresh
process per comparison) and ``memory`` for peak memory (one fresh process per file), and
LiteRT's predictions on the test split, all with the board's Python and ai-edge-litert.
It holds an exclusive ``flock`` on ``LOCK`` (a file in /tmp on the board) while it
measures, so two gates on one board time one at a time. It prints one JSON line.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import platform
import select
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.measure import litert, machine, memory
from compressgate.measure.processes import fresh_times

LOCK = "/tmp/compressgate-board.lock"
PLAN = "plan.json"
INPUTS = "x.npy"
# Exit code of a board whose lock another gate held for longer than the plan allows.
BUSY = 75


class Busy(RuntimeError):
    """Another gate held the board's lock for longer than this one may wait."""


@contextlib.contextmanager
def locked(path: str, timeout: float | None) -> Iterator[None]:
    """Hold an exclusive flock on ``path``: wait ``timeout`` seconds (None: as long as
    it takes) for another gate to release it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise Busy(f"busy: another gate held {path} for more than "
                               f"{timeout:g} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


def encode(array: np.ndarray) -> str:
    """An array as base64 of its ``.npy`` bytes (float32: outputs on the test split)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def versions() -> dict[str, str]:
    """The board's runtime: Python, numpy and ai-edge-litert versions."""
    try:
        litert_version = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        litert_version = "unknown"
    return {"python": platform.python_version(), "numpy": np.__version__,
            "ai-edge-litert": litert_version}


def stop_when_gate_leaves() -> None:
    """Stop this measurement (the process group: the board's shell, this child and its
    children) once the gate's end of the connection is gone (ssh killed on timeout, the
    gate cancelled): the board's lock is not held for a gate that will read nothing, and
    the shell's trap removes the run directory at once. Watches stdout, the pipe or
    socket to sshd, for an error or hang-up."""
    fd = sys.stdout.fileno()
    if not stat.S_ISFIFO(os.fstat(fd).st_mode) and not stat.S_ISSOCK(os.fstat(fd).st_mode):
        return  # a terminal or a file: nobody to lose
    poller = select.poll()
    poller.register(fd, select.POLLERR | select.POLLHUP)

    def watch() -> None:
        while not poller.poll(500):
            pass
        os.killpg(os.getpgrp(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="gate-watch").start()


def measure_here(where: Path) -> dict[str, Any]:
    """Every figure the plan in ``where`` asks for, measured under the board's lock."""
    plan = json.loads((where / PLAN).read_text())
    files = {name: (where / f"{name}.tflite").read_bytes() for name in plan["files"]}
    x = np.load(where / INPUTS, allow_pickle=False)
    with locked(plan.get("lock", LOCK), plan.get("lock_timeout")):
        out: dict[str, Any] = {"fingerprint": machine.fingerprint(), "versions": versions()}
        out["outputs"] = {name: encode(litert.predict(files[name], x, batch=plan.get("batch"))
                                       .reshape(len(x), -1))
                          for name in plan["outputs"]}
        out["memory"] = {name: list(memory.peak_memory(files[name]))
                         for name in plan["memory"]}
        # Last, after the outputs: nothing else of this gate runs while pairs are timed.
        out["latency"] = [[candidate, reference, fresh_times(
            files[reference], files[candidate], x[:1].astype(np.float32), processes=1,
            pairs=plan["pairs"])[0]] for candidate, reference in plan["latency"]]
    return out


if __name__ == "__main__":
    stop_when_gate_leaves()
    try:
        result = measure_here(Path(sys.argv[1]))
    except Busy as exc:
        print(exc, file=sys.stderr)
        sys.exit(BUSY)
    print(json.dumps(result), flush=True)
