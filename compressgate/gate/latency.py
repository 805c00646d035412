"""The latency check: this run's interleaved pairs against the accepted file timed side
by side and against this machine class's record; pure, like the other rules."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from compressgate.gate import envelope
from compressgate.gate.baselines import UPDATE_MISSING
from compressgate.gate.records import Row, Status, Verdict
from compressgate.gate.rules import _headroom
from compressgate.measure.stats import LatencyPairs, ratio_below, ratio_exceeds
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

# On a busy machine a latency regression must exceed its limit by this factor to stand:
# contention moved the int16x8 ratios by 1.4x with a tight interval (VNNI class, two
# other jobs running); a graph that fell off XNNPACK is 20-100x slower.
BUSY_FACTOR = 2.0


@dataclass(frozen=True)
class LatencyReference:
    """What a latency is judged against: this machine class's record and the accepted
    file timed next to the new one in this run."""

    # The recorded recipe/float ratio and its 95 % interval (None: no record here).
    ratio: float | None = None
    interval: tuple[float, float] | None = None
    # New (candidate) against accepted (reference), timed in this run; or why not.
    side: LatencyPairs | None = None
    side_note: str = ""
    # The new file is the accepted one: the same bytes run at the same speed.
    side_identical: bool = False
    machine_class: str = ""
    # The per-process medians of a record made from several processes (``envelope``).
    recorded_processes: tuple[float, ...] = ()


def check_latency(model: str, recipe: str, pairs: LatencyPairs | None, promise: Promise,
                  reference: LatencyReference, tol: Tolerances,
                  hint: str = UPDATE_MISSING,
                  processes: Sequence[LatencyPairs] = ()) -> Verdict:
    """Latency from this run's interleaved pairs, two ways.

    Side by side (any machine): the new file against the accepted one
    (``reference.side``: candidate = new, reference = accepted); a regression is
    new/accepted significantly above ``1 + latency_pct``. This catches a slower artifact.

    Against this machine class's record: the recipe/float ratio (``pairs``) against
    ``reference.ratio``; a regression needs the ratio worse than the recorded one by more
    than the tolerance, counted from the edge of its recorded 95 % interval, *and* the
    per-pair difference significant (exact sign test, p < alpha). This catches a slower
    runtime (the same file, slower kernels). Without a record for this class it is
    skipped, with a note saying how to add it. A record made from several processes
    (``reference.recorded_processes``) is judged by ``envelope`` on this run's
    ``processes``.

    ``reference.side_identical``: the new file is the accepted one (same bytes, same
    speed), said in ``reference.side_note``. A regression timed while other tasks
    competed for the machine is not judged (skipped, with the load): contention moves
    cache-bound kernels more than the float reference, so a busy machine can move a ratio
    as far as a real slowdown.
    """
    if pairs is None:
        return Verdict(model, recipe, "latency", (
            Row("converted", False, True, "-", Status.FAIL, "no model to time"),))
    ratio = pairs.ratio
    low, high = pairs.ratio_interval()
    interval = f"95% CI {low:.3f}-{high:.3f}, n={len(pairs.reference_ms)}"
    rows, notes = [], [f"float {pairs.reference_median_ms:.4f} ms, "
                       f"{recipe} {pairs.candidate_median_ms:.4f} ms per inference"]
    factor = 1 + tol.latency_pct / 100
    if promise.faster_than_float:
        faster, p = ratio_below(pairs, 1.0, tol.alpha)
        rows.append(Row("faster than float", ratio, 1.0, f"p < {tol.alpha}",
                        Status.PASS if faster else Status.FAIL, f"p={p:.2g}, {interval}"))
    side, baseline_ratio = reference.side, reference.ratio
    if side is not None:
        worse, p_worse = ratio_exceeds(side, factor, tol.alpha)
        better, p_better = ratio_below(side, 1 / factor, tol.alpha)
        status = Status.REGRESSION if worse else Status.IMPROVED if better else Status.PASS
        s_low, s_high = side.ratio_interval()
        rows.append(_unless_busy(side, factor, tol.alpha, Row(
            "time vs accepted", side.ratio, 1.0, f"<= {factor:.3g}, p < {tol.alpha}",
            status, f"p={p_better if status == Status.IMPROVED else p_worse:.2g}, "
                    f"95% CI {s_low:.3f}-{s_high:.3f}, both timed in this run",
            headroom=_headroom(math.log(side.ratio), math.log(factor)))))
    elif reference.side_note:
        rows.append(Row("time vs accepted", None, None, "-",
                        Status.PASS if reference.side_identical else Status.SKIPPED,
                        reference.side_note))
    where = reference.machine_class or "this machine"
    if baseline_ratio is None:
        rows.append(Row("latency_ratio", ratio, None, "-", Status.SKIPPED,
                        f"no latency record for machine class {where}: a slower runtime "
                        f"would go unseen here; record it with: {hint}", missing=True))
    elif reference.recorded_processes and processes:
        rows.append(envelope.row(reference.recorded_processes, processes, factor, tol.alpha,
                                 busy_factor=BUSY_FACTOR))
    else:
        b_low, b_high = reference.interval or (baseline_ratio, baseline_ratio)
        upper, lower = max(b_high, baseline_ratio) * factor, min(b_low, baseline_ratio) / factor
        worse, p_worse = ratio_exceeds(pairs, upper, tol.alpha)
        better, p_better = ratio_below(pairs, lower, tol.alpha)
        status = Status.REGRESSION if worse else Status.IMPROVED if better else Status.PASS
        p = p_worse if status != Status.IMPROVED else p_better
        rows.append(_unless_busy(pairs, upper, tol.alpha, Row(
            "latency_ratio", ratio, baseline_ratio, f"<= {upper:.3g}, p < {tol.alpha}",
            status, f"p={p:.2g}, {interval}",
            headroom=_headroom(math.log(ratio / baseline_ratio),
                               math.log(upper / baseline_ratio)))))
    return Verdict(model, recipe, "latency", tuple(rows), tuple(notes))


def _unless_busy(pairs: LatencyPairs, limit: float, alpha: float, row: Row) -> Row:
    """A regression timed on a busy machine stands only beyond ``BUSY_FACTOR`` times its
    limit (significantly); a smaller one becomes "not judged here", with the load."""
    if row.status != Status.REGRESSION or not pairs.busy:
        return row
    load = f"machine busy while timing ({pairs.others_running:.1f} other runnable tasks " \
           "on average)"
    if ratio_exceeds(pairs, limit * BUSY_FACTOR, alpha)[0]:
        return dataclasses.replace(
            row, note=f"{row.note}; {load}, and still beyond {BUSY_FACTOR:g}x the limit")
    return dataclasses.replace(
        row, status=Status.SKIPPED,
        note=f"{load}: would be a regression ({row.note}), within what contention moves "
             f"({BUSY_FACTOR:g}x the limit); not judged, re-run on a quiet machine")
