"""Worker processes that may crash or hang without taking the run down with them.

A conversion runs TensorFlow, tfmot and the LiteRT interpreter: native code that can
segfault, abort or never return. Each such task runs in a pebble worker process (spawned,
reused across tasks so TensorFlow is imported once per worker, replaced when one dies),
with a per-task timeout. A dead or stuck worker fails its own task with one line
("worker crashed: signal SIGSEGV", "timed out after 1800 s"); the other tasks go on.

A worker's file descriptor 2 goes to a log file of its own (native code such as glibc's
heap checks writes there just before it aborts): a crash's line keeps the last lines the
task wrote, and TensorFlow's start-up chatter stays out of the terminal.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from compressgate.errors import UserInputError

TIMEOUT_ENV = "COMPRESSGATE_CONVERSION_TIMEOUT"
# Longer than any fixture x recipe takes on 2 shared cores (the slowest, a 6-epoch
# pruning fine-tune, takes about a minute); a task running this long is stuck.
DEFAULT_TIMEOUT = 1800.0

T = TypeVar("T")

# What a native crash's line quotes of the worker's stderr.
TAIL_LINES = 4
TAIL_CHARS = 200
# oneDNN's AVX-512 kernels have aborted fine-tunes with glibc heap corruption
# ("munmap_chunk(): invalid pointer"); either variable keeps TensorFlow off them.
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
NATIVE_HINT = ("if it recurs, run again with ONEDNN_MAX_CPU_ISA=AVX2 or "
               "TF_ENABLE_ONEDNN_OPTS=0 set (TensorFlow's oneDNN kernels)")


def conversion_timeout() -> float:
    """Seconds one conversion may take: ``$COMPRESSGATE_CONVERSION_TIMEOUT`` or 30 min."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserInputError(f"${TIMEOUT_ENV}: expected a number of seconds > 0, got {text!r}")
    return value


def _log_path(log_dir: str, pid: int) -> Path:
    return Path(log_dir) / f"worker-{pid}.log"


def _logged(log_dir: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a worker with fd 2 sent to this worker's log, emptied per task."""
    path = _log_path(log_dir, os.getpid())
    if not path.exists():
        sys.stderr.flush()
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
    os.ftruncate(2, 0)  # O_APPEND: later writes start again at offset 0
    return fn(*args)


def stderr_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last non-empty lines of a worker's log (none when it wrote nothing)."""
    try:
        text = path.read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return []
    kept = [line.strip()[:TAIL_CHARS] for line in text.splitlines() if line.strip()]
    return kept[-lines:]


def crash_line(code: int | None, tail: list[str]) -> str:
    """One line for a worker that exited: the signal or code, what it last wrote to
    stderr and, for a signal, what to try."""
    if code is not None and code < 0:
        try:
            what = f"signal {signal.Signals(-code).name}"
        except ValueError:
            what = f"signal {-code}"
    else:
        what = f"exit code {code}"
    line = f"worker crashed: {what}"
    if tail:
        line += f"; its stderr ended: {' / '.join(tail)}"
    if code is not None and code < 0:
        line += f"; {NATIVE_HINT}"
    return line


def failure_message(exc: BaseException, log_dir: str | None = None) -> str | None:
    """The one line for a worker that died or overran, or None for any other error."""
    # By name: the pebble module that raised it may not be the one imported here.
    if type(exc).__name__ == "ProcessExpired":
        pid = getattr(exc, "pid", None)
        tail = stderr_tail(_log_path(log_dir, pid)) if log_dir and pid else []
        return crash_line(getattr(exc, "exitcode", None), tail)
    if isinstance(exc, TimeoutError):  # pebble's carries the timeout it enforced
        timeout = exc.args[-1] if exc.args and isinstance(exc.args[-1], int | float) else None
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    return None


def native_crash(failure: str) -> bool:
    """Whether a failure line is a worker killed by a signal (native code), not an exit
    code or a timeout."""
    return failure.startswith("worker crashed: signal")


def onednn_on() -> bool:
    """Whether TensorFlow started here would use its oneDNN optimizations (its default)."""
    return os.environ.get(ONEDNN_ENV, "").strip() != "0"


def _without_onednn(fn: Callable[..., T], *args: Any) -> T:
    """``fn`` in a fresh worker, TensorFlow's oneDNN optimizations off: the variable is
    read once, when TensorFlow is imported, so it must not be imported yet."""
    if "tensorflow" in sys.modules:
        raise RuntimeError(f"{ONEDNN_ENV}=0 set too late: TensorFlow is already imported "
                           "in this worker")
    os.environ[ONEDNN_ENV] = "0"
    return fn(*args)


def without_onednn(fn: Callable[..., T], *args: Any) -> tuple[T | None, str | None]:
    """``Workers.run`` of ``fn`` in a fresh worker of its own with oneDNN's
    optimizations off (the other workers keep them)."""
    with Workers(1) as workers:
        return workers.run(_without_onednn, fn, *args)


class Workers:
    """A pool of ``jobs`` spawned worker processes; ``run`` gives a task's value or the
    line saying why its worker did not return one. Use as a context manager."""

    def __init__(self, jobs: int) -> None:
        # Spawn pickles pebble's worker function by name, so the pool must come from the
        # module that name resolves to now (pytester's in-process runs swap sys.modules).
        self._module = importlib.import_module("pebble.pool.process")
        self._logs = tempfile.TemporaryDirectory(prefix="compressgate-workers-")
        self._jobs = max(1, jobs)
        self._pool = self._new_pool()

    def _new_pool(self):
        return self._module.ProcessPool(max_workers=self._jobs,
                                        context=multiprocessing.get_context("spawn"))

    @property
    def stale(self) -> bool:
        return sys.modules.get("pebble.pool.process") is not self._module

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.schedule(_logged, args=(self._logs.name, fn, *args),
                                   timeout=conversion_timeout())

    def outcome(self, future: Future[T]) -> tuple[T | None, str | None]:
        """(value, None), or (None, failure line); errors raised by the task re-raise."""
        try:
            return future.result(), None
        except Exception as exc:
            message = failure_message(exc, self._logs.name)
            if message is None:
                raise
            return None, message

    def run(self, fn: Callable[..., T], *args: Any) -> tuple[T | None, str | None]:
        try:
            return self.outcome(self.submit(fn, *args))
        except BrokenProcessPool:
            # pebble can notice a dead worker's exit after that worker's task was settled
            # and then give up on the whole pool ("All workers expired"), failing the next
            # task with it: tasks are pure computations, so a fresh pool runs it again.
            self._pool.stop()
            self._pool.join()
            self._pool = self._new_pool()
            return self.outcome(self.submit(fn, *args))

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()
        self._logs.cleanup()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: Workers | None = None


def shared() -> Workers:
    """This process's one worker for results computed on demand, reused by every
    ``Runner`` (TensorFlow is imported once per process that converts, as before)."""
    global _shared
    if _shared is None or _shared.stale:
        _shared = Workers(1)
        atexit.register(_shared.close)
    return _shared
