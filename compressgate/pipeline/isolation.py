"""Worker processes that may crash or hang without taking the run down with them.

A conversion runs TensorFlow, tfmot and the LiteRT interpreter: native code that can
segfault, abort or never return. Each such task runs in a pebble worker process (spawned,
reused across tasks so TensorFlow is imported once per worker, replaced when one dies),
with a per-task timeout. A dead or stuck worker fails its own task with one line
("worker crashed: signal SIGSEGV", "timed out after 1800 s"); the other tasks go on.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from compressgate.errors import UserInputError

TIMEOUT_ENV = "COMPRESSGATE_CONVERSION_TIMEOUT"
# Longer than any fixture x recipe takes on 2 shared cores (the slowest, a 6-epoch
# pruning fine-tune, takes about a minute); a task running this long is stuck.
DEFAULT_TIMEOUT = 1800.0

T = TypeVar("T")


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


def failure_message(exc: BaseException) -> str | None:
    """The one line for a worker that died or overran, or None for any other error."""
    # By name: the pebble module that raised it may not be the one imported here.
    if type(exc).__name__ == "ProcessExpired":
        code = getattr(exc, "exitcode", None)
        if code is not None and code < 0:
            try:
                return f"worker crashed: signal {signal.Signals(-code).name}"
            except ValueError:
                return f"worker crashed: signal {-code}"
        return f"worker crashed: exit code {code}"
    if isinstance(exc, TimeoutError):  # pebble's carries the timeout it enforced
        timeout = exc.args[-1] if exc.args and isinstance(exc.args[-1], int | float) else None
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    return None


class Workers:
    """A pool of ``jobs`` spawned worker processes; ``run`` gives a task's value or the
    line saying why its worker did not return one. Use as a context manager."""

    def __init__(self, jobs: int) -> None:
        # Spawn pickles pebble's worker function by name, so the pool must come from the
        # module that name resolves to now (pytester's in-process runs swap sys.modules).
        self._module = importlib.import_module("pebble.pool.process")
        self._pool = self._module.ProcessPool(max_workers=max(1, jobs),
                                              context=multiprocessing.get_context("spawn"))

    @property
    def stale(self) -> bool:
        return sys.modules.get("pebble.pool.process") is not self._module

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.schedule(fn, args=args, timeout=conversion_timeout())

    def outcome(self, future: Future[T]) -> tuple[T | None, str | None]:
        """(value, None), or (None, failure line); errors raised by the task re-raise."""
        try:
            return future.result(), None
        except Exception as exc:
            message = failure_message(exc)
            if message is None:
                raise
            return None, message

    def run(self, fn: Callable[..., T], *args: Any) -> tuple[T | None, str | None]:
        return self.outcome(self.submit(fn, *args))

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

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
