"""Rows of the latency check for the thread counts a model is deployed at
(``latency_threads``): the ratio at each count, for people, and outputs that must equal
one thread's (a kernel whose result depends on the thread count is a defect the
one-thread figures cannot show)."""

from __future__ import annotations

from compressgate.gate.records import Row, Status
from compressgate.measure.threads import ThreadRun


def rows(runs: tuple[ThreadRun, ...]) -> tuple[Row, ...]:
    """Two rows per thread count: ``latency_ratio @N threads`` (info: no record is kept
    per thread count) and ``outputs @N threads`` (fails unless identical to 1 thread)."""
    out: list[Row] = []
    for run in runs:
        low, high = run.pairs.ratio_interval()
        out.append(Row(f"latency_ratio @{run.threads} threads", round(run.pairs.ratio, 4),
                       None, "-", Status.INFO,
                       f"recipe/float at {run.threads} threads, 95 % CI {low:.3f}-{high:.3f}",
                       key=f"latency_ratio_threads_{run.threads}"))
        same = run.differing == 0
        note = (f"identical to 1 thread on all {run.rows} test rows" if same else
                f"differ from 1 thread on {run.differing} of {run.rows} test rows "
                f"(largest difference {run.largest:.3g})")
        out.append(Row(f"outputs @{run.threads} threads", run.differing, 0,
                       "identical to 1 thread", Status.PASS if same else Status.FAIL, note,
                       key=f"outputs_threads_{run.threads}"))
    return tuple(out)
