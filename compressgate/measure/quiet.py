"""A quiet phase for timing: the gate's other processes pause while one times.

Under pytest-xdist the worker that runs the latency group would otherwise time its pairs
while another worker converts, fine-tunes or measures memory on the other core, and the
check ends "not judged: machine busy". Every gate check holds the phase shared; a timing
check holds it exclusively, so it starts once the running checks are done and the others
wait until it is. A turnstile keeps a queued timer from being starved by checks that
follow each other back to back.

``fcntl.flock`` locks: released by the kernel when a worker dies, so a crash cannot leave
the run waiting. (filelock's ``ReadWriteLock`` is SQLite-based and polls; it gives no
such ordering between a waiting writer and new readers.)
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class QuietPhase:
    """Shared by the processes of one run through ``directory`` (made by the caller)."""

    def __init__(self, directory: Path) -> None:
        self._lock = directory / "quiet.lock"
        self._turnstile = directory / "quiet.turnstile"

    @contextmanager
    def working(self) -> Iterator[None]:
        """Around a check that does not time: runs beside other such checks."""
        with _flock(self._turnstile, fcntl.LOCK_EX):
            pass  # a queued timer holds the turnstile: wait behind it
        with _flock(self._lock, fcntl.LOCK_SH):
            yield

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Around a check that times: runs alone among the run's checks."""
        with _flock(self._turnstile, fcntl.LOCK_EX), _flock(self._lock, fcntl.LOCK_EX):
            yield
