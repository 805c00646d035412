"""The same file at more threads: the recipe/float ratio at each thread count a team
deploys at, and whether its outputs there equal those at one thread.

XNNPACK splits an operator's work across threads by output tiles, so its outputs should
not depend on the thread count; a kernel that splits a reduction instead can change them
(tensorflow #56058), which a one-thread gate would never see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressgate.measure import litert
from compressgate.measure.stats import LatencyPairs


@dataclass(frozen=True)
class ThreadRun:
    """One thread count: the interleaved pairs against the float reference at that count,
    and the candidate's outputs on the test split compared with one thread's."""

    threads: int
    pairs: LatencyPairs
    rows: int
    # Rows whose outputs differ from one thread's at all, and the largest difference.
    differing: int
    largest: float


def compare_outputs(one: np.ndarray, many: np.ndarray) -> tuple[int, float]:
    """(rows that differ at all, largest absolute difference) between two output arrays
    of the same rows."""
    difference = np.abs(np.asarray(many, np.float64) - np.asarray(one, np.float64))
    difference = difference.reshape(len(one), -1)
    if not difference.size:
        return 0, 0.0
    return int(np.sum(difference.max(axis=1) > 0)), float(difference.max())


def measure(reference: bytes, candidate: bytes, sample: np.ndarray, x: np.ndarray,
            threads: int, *, batch: int | None = None,
            pairs: int = litert.LATENCY_PAIRS) -> ThreadRun:
    """``candidate`` against ``reference`` at ``threads`` threads (``sample``: the timed
    row), and its outputs on ``x`` at ``threads`` and at one thread."""
    timed = litert.interleaved_latency(reference, candidate, sample, pairs=pairs,
                                       num_threads=threads)

    def outputs(n: int) -> np.ndarray:
        return litert.predict(candidate, x, batch=batch,
                              make_interpreter=lambda t: litert.interpreter(t, num_threads=n))

    differing, largest = compare_outputs(outputs(1), outputs(threads))
    return ThreadRun(threads, timed, len(x), differing, largest)
