"""The recipe/float latency ratio against a record that spans processes.

A record holds the per-process median ratios of ``RECORD_PROCESSES`` processes (the
recording one and fresh ones). The ratio can fall into one of several modes per
process, so the record's processes are an envelope, not one interval. A run measures
the ratio in its own process; only when that lies beyond the envelope does it measure
fresh processes too (``RUN_PROCESSES`` in all, more to make a regression significant).
The rule, two-level:

- **pairs within a process**: a process counts as beyond the envelope when its pairs are
  significantly (exact sign test, p < alpha) above the envelope's top times
  ``1 + latency_pct`` (below its bottom divided by it, for "improved");
- **processes**: a regression needs *every* new process beyond, and enough of them that
  this is significant by itself: if the new processes were drawn like the recorded ones,
  all ``K`` of them landing above all ``R`` recorded has probability ``1 / C(R + K, K)``
  (exact, rank-based, whatever the modes look like). When every process measured so far
  is beyond but ``K`` is too small for p < alpha, the session measures more
  (``processes_needed``) before a verdict: 4 in all against a record of 5.

Measured false-alarm rate and power: ``scripts/latency_processes.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from compressgate.gate.baselines import PROCESS_FIGURE
from compressgate.gate.records import Row, Status
from compressgate.measure.stats import LatencyPairs, ratio_below, ratio_exceeds

# Processes a class record is made from (the recording process and fresh ones).
RECORD_PROCESSES = 5
# Processes a run spends on a latency check whose first process lies beyond the envelope
# (its own and one fresh one); within it, the gate's own process is all it spends.
RUN_PROCESSES = 2


def process_p(recorded: int, new: int) -> float:
    """Probability that all ``new`` processes land above all ``recorded`` ones when they
    come from one distribution: 1 / C(recorded + new, new)."""
    return 1.0 / math.comb(recorded + new, new)


def processes_needed(recorded: int, alpha: float) -> int:
    """The fewest new processes that can make a regression significant at ``alpha``."""
    new = 1
    while process_p(recorded, new) >= alpha:
        new += 1
    return new


def runs_for(recorded: Sequence[float], measure: Callable[[int], tuple[LatencyPairs, ...]],
             factor: float, alpha: float) -> tuple[LatencyPairs, ...]:
    """The processes a judgement needs, measured one step at a time (``measure(n)`` gives
    ``n`` processes in all, measuring only those it lacks): the first (the gate's own)
    alone when it lies within the envelope, since a verdict needs every process beyond
    it; else ``RUN_PROCESSES``, and enough to make a regression significant when every
    one so far is beyond."""
    runs = measure(1)
    first = judge(recorded, runs, factor, alpha)
    if first.status == Status.PASS and not first.needs_more:
        return runs
    runs = measure(RUN_PROCESSES)
    if judge(recorded, runs, factor, alpha).needs_more:
        runs = measure(processes_needed(len(recorded), alpha))
    return runs


def record(runs: Sequence[LatencyPairs]) -> dict[str, object]:
    """A class record from per-process measurements: the per-process medians, and their
    median and range under the figures an older record (and a report) reads."""
    medians = sorted(run.ratio for run in runs)
    return {PROCESS_FIGURE: [round(m, 4) for m in medians],
            "latency_ratio": float(np.median(medians)),
            "latency_ratio_low": medians[0], "latency_ratio_high": medians[-1]}


@dataclass(frozen=True)
class Judgement:
    """The new processes against the recorded envelope."""

    status: Status
    upper: float
    lower: float
    # 1 / C(R + K, K): how unlikely "every new process beyond" is by the luck of the modes.
    p_processes: float
    # The largest within-process sign-test p of the direction judged.
    p_pairs: float
    # Every process so far beyond the envelope, too few of them to be significant.
    needs_more: bool = False

    @property
    def regression(self) -> bool:
        return self.status == Status.REGRESSION


def judge(recorded: Sequence[float], runs: Sequence[LatencyPairs], factor: float,
          alpha: float) -> Judgement:
    """``runs`` (one per process) against the recorded per-process medians."""
    upper, lower = max(recorded) * factor, min(recorded) / factor
    p_proc = process_p(len(recorded), len(runs))
    worse = [ratio_exceeds(run, upper, alpha) for run in runs]
    if all(hit for hit, _ in worse):
        p_pairs = max(p for _, p in worse)
        if p_proc < alpha:
            return Judgement(Status.REGRESSION, upper, lower, p_proc, p_pairs)
        return Judgement(Status.PASS, upper, lower, p_proc, p_pairs, needs_more=True)
    better = [ratio_below(run, lower, alpha) for run in runs]
    if all(hit for hit, _ in better):  # a stale record: passes, and says so
        return Judgement(Status.IMPROVED, upper, lower, p_proc, max(p for _, p in better))
    return Judgement(Status.PASS, upper, lower, p_proc, min(p for _, p in worse))


def row(recorded: Sequence[float], runs: Sequence[LatencyPairs], factor: float,
        alpha: float, *, busy_factor: float) -> Row:
    """The ``latency_ratio`` row of the latency check. A regression timed while other
    tasks competed for the machine stands only beyond ``busy_factor`` times the limit."""
    verdict = judge(recorded, runs, factor, alpha)
    medians = [run.ratio for run in runs]
    ratio = float(np.median(medians))
    said = (f"{len(runs)} processes {'/'.join(f'{m:.3f}' for m in medians)} against "
            f"{len(recorded)} recorded {min(recorded):.3f}-{max(recorded):.3f}; "
            f"p(pairs)={verdict.p_pairs:.2g}, p(processes)={verdict.p_processes:.2g}")
    if verdict.needs_more:
        said += "; every process beyond the envelope, too few to tell from its modes"
    base = float(np.median(recorded))
    out = Row("latency_ratio", ratio, base, f"<= {verdict.upper:.3g} in every process, "
              f"p < {alpha}", verdict.status, said,
              headroom=_headroom(math.log(min(medians) / max(recorded)), math.log(factor)))
    busy = [run for run in runs if run.busy]
    if not verdict.regression or not busy:
        return out
    load = (f"machine busy while timing ({max(r.others_running or 0 for r in busy):.1f} "
            "other runnable tasks on average)")
    if judge(recorded, runs, factor * busy_factor, alpha).regression:
        return Row(out.metric, out.measured, out.expected, out.tolerance, out.status,
                   f"{said}; {load}, and still beyond {busy_factor:g}x the limit",
                   headroom=out.headroom)
    return Row(out.metric, out.measured, out.expected, out.tolerance, Status.SKIPPED,
               f"{load}: would be a regression ({said}), within what contention moves "
               f"({busy_factor:g}x the limit); not judged, re-run on a quiet machine",
               headroom=out.headroom)


def _headroom(moved: float, allowed: float) -> float:
    return 1 - moved / allowed if allowed else 0.0
