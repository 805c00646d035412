"""Verdicts: pure functions from measured figures (+ promise, + baseline) to pass/fail.

Nothing here imports TensorFlow or touches files, so every rule is unit-testable on
hand-made rows. Comparisons against a baseline are one-sided: getting worse beyond the
tolerance is a regression; getting better beyond it passes but marks the baseline stale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compressgate.gate import envelope
from compressgate.gate.baselines import ARENA_FIGURE, ARTIFACT_FIGURE, MEMORY_FIGURE
from compressgate.gate.records import Row, Status, Verdict, fmt
from compressgate.gate.tolerances import Tolerances
from compressgate.measure.stats import (
    LatencyPairs,
    SideBySide,
    ratio_below,
    ratio_exceeds,
    rows_within,
)
from compressgate.recipes import DEFAULT_TFLM_QUANTA, Promise

CHECKS = ("conversion", "accuracy", "size", "baseline", "latency")
# Run only where a recipe promises a runtime besides LiteRT or a kernel parity.
TARGETS_CHECK = "targets"
# On a busy machine a latency regression must exceed its limit by this factor to stand:
# contention moved the int16x8 ratios by 1.4x with a tight interval (VNNI class, two
# other jobs running); a graph that fell off XNNPACK is 20-100x slower.
BUSY_FACTOR = 2.0
# Relative slack of "not worse by more than X" comparisons (float rounding, not tolerance).
EPSILON = 1e-9
# The float conversion must predict what Keras predicts (float rounding may flip a tie).
KERAS_AGREEMENT = 0.99


def check_conversion(row: dict[str, Any], promise: Promise) -> Verdict:
    rows = [Row("converted", row["converted"], True, "-",
                Status.PASS if row["converted"] else Status.FAIL, row.get("error") or "")]
    if row["converted"]:
        if promise.io_dtype:
            for side in ("input_dtype", "output_dtype"):
                rows.append(Row(side, row[side], promise.io_dtype, "-",
                                Status.PASS if row[side] == promise.io_dtype else Status.FAIL))
        if promise.integer_only:
            floats = row.get("float_ops") or []
            rows.append(Row("float ops", " ".join(floats) or "none", "none", "-",
                            Status.FAIL if floats else Status.PASS))
        if promise.min_runtime:
            rows.append(_runtime_row(row, promise.min_runtime))
    return Verdict(row["model"], row["recipe"], "conversion", tuple(rows))


def _runtime_row(row: dict[str, Any], declared: str) -> Row:
    """The declared oldest runtime against the op versions in the flatbuffer; an op the
    runtime table does not know cannot be vouched for, so it fails too."""
    from compressgate.compat.runtime_versions import judge, requirement

    if not row.get("op_versions"):  # e.g. a row from an older cache: nothing to vouch for
        return Row("min runtime", None, f"<= {declared}", "-", Status.FAIL,
                   "no op versions recorded for this file: cannot vouch for a runtime")
    verdict = judge(requirement(tuple(op) for op in row.get("op_versions") or ()), declared)
    return Row("min runtime", verdict.measured, f"<= {declared}", "-",
               Status.PASS if verdict.ok else Status.FAIL, verdict.note)


def check_accuracy(row: dict[str, Any], promise: Promise) -> Verdict:
    """The recipe's loss against the float model: accuracy in points (the promise's
    ``max_drop_pts``), or a custom metric in its own units (the metric's ``max_loss``)."""
    if row.get("metric", "accuracy") != "accuracy":
        return _check_metric(row)
    drop = row.get("accuracy_drop_pts")
    if drop is None:
        return _not_converted(row, "accuracy")
    ok = drop < promise.max_drop_pts
    rows = [Row("accuracy drop (pts)", drop, promise.max_drop_pts, "< limit",
                Status.PASS if ok else Status.FAIL,
                f"{row['accuracy']:.4f} vs float {row['float_accuracy']:.4f}")]
    agreement = row.get("keras_agreement")
    if agreement is not None:  # the float reference: is the conversion faithful?
        rows.append(Row("top-1 agreement with Keras", agreement, KERAS_AGREEMENT, ">= limit",
                        Status.PASS if agreement >= KERAS_AGREEMENT else Status.FAIL))
    return Verdict(row["model"], row["recipe"], "accuracy", tuple(rows))


def _check_metric(row: dict[str, Any]) -> Verdict:
    loss = row.get("metric_loss")
    if loss is None:
        return _not_converted(row, "accuracy")
    better = "higher" if row["higher_is_better"] else "lower"
    return Verdict(row["model"], row["recipe"], "accuracy", (
        Row(f"{row['metric']} loss", loss, row["max_loss"], "< limit",
            Status.PASS if loss < row["max_loss"] else Status.FAIL,
            f"{row['score']:.6g} vs float {row['float_score']:.6g}, {better} is better"),))


def check_size(row: dict[str, Any], promise: Promise) -> Verdict:
    if row.get("size_ratio") is None:
        return _not_converted(row, "size")
    rows = []
    for metric, limit in (("size_ratio", promise.min_size_ratio),
                          ("gzip_ratio", promise.min_gzip_ratio)):
        if limit is not None:
            rows.append(Row(metric, row[metric], limit, ">= limit",
                            Status.PASS if row[metric] >= limit else Status.FAIL))
    if promise.max_clusters is not None:
        rows.append(_clusters_row(row, promise.max_clusters))
    if not rows:
        rows.append(Row("size_ratio", row["size_ratio"], None, "no promise", Status.SKIPPED,
                        "the recipe promises no size ratio"))
    return Verdict(row["model"], row["recipe"], "size", tuple(rows))


def _clusters_row(row: dict[str, Any], limit: int) -> Row:
    """Clustering must be visible in the file: a clustering lost on the way (a stage
    skipped, a QAT that re-learned free weights) leaves many values per channel."""
    measured = row.get("clusters_max")
    ok = measured is not None and measured <= limit
    return Row("distinct values per channel (max)", measured, limit, "<= limit",
               Status.PASS if ok else Status.FAIL,
               "" if measured is not None else "no weight tensors counted in this file")


def _not_converted(row: dict[str, Any], check: str) -> Verdict:
    return Verdict(row["model"], row["recipe"], check, (
        Row("converted", False, True, "-", Status.FAIL, row.get("error") or "no result"),))


def _one_sided(metric: str, measured: float, base: float, *, higher_is_better: bool,
               allowed: float, tol_text: str, note: str = "") -> Row:
    """Worse than ``base`` by more than ``allowed`` is a regression, better by more is
    an improvement; exactly ``allowed`` is neither (a relative epsilon absorbs float
    rounding, so 0.97 - 0.965 counts as 0.005)."""
    worse = base - measured if higher_is_better else measured - base
    slack = allowed + EPSILON * max(abs(base), abs(measured), 1.0)
    if worse > slack:
        status = Status.REGRESSION
    elif -worse > slack:
        status = Status.IMPROVED
    else:
        status = Status.PASS
    return Row(metric, measured, base, tol_text, status, note,
               headroom=_headroom(worse, allowed))


def _headroom(used: float, allowed: float) -> float:
    """1 - used/allowed, with a zero allowance counted as one unit (whole rows)."""
    return 1 - used / (allowed if allowed > 0 else 1.0)


@dataclass(frozen=True)
class Reference:
    """What a result is judged against: its baseline, as seen from this run's machine."""

    metrics: dict[str, Any]
    # Machine-bound figures recorded for this machine's class ({}: none).
    machine: dict[str, Any] = field(default_factory=dict)
    machine_class: str = ""
    side: SideBySide | None = None
    # Why there is no side-by-side comparison (the accepted artifact is absent, ...).
    absent: str = ""
    # What differs from the build that recorded the baseline (versions, Python, machine
    # class); empty: the same build, where a conversion must be byte-identical.
    build_changes: tuple[str, ...] = ()
    # Digests of the model, data or recipe that differ from the recorded ones.
    changed_inputs: tuple[str, ...] = ()
    # A declared, measured reason why this conversion is not byte-reproducible.
    nondeterministic: str | None = None
    # False: a baseline from before compressgate recorded input digests.
    inputs_recorded: bool = True
    # The recipe fine-tunes (its bytes and outputs legitimately differ across machines).
    finetuned: bool = False

    @classmethod
    def recorded(cls, metrics: dict[str, Any]) -> Reference:
        """Only the recorded figures (no artifact at hand); a ``peak_memory_bytes`` among
        them counts as this machine's."""
        machine = {k: metrics[k] for k in (MEMORY_FIGURE,) if k in metrics}
        return cls(metrics, machine, absent="no accepted artifact at hand")


def check_baseline(row: dict[str, Any], reference: Reference | dict[str, Any],
                   tol: Tolerances, hint: str = "--compressgate-update=missing") -> Verdict:
    """Against the accepted result: quality (paired on the same test rows when the
    accepted file is at hand), size, gzip size, sparsity, fidelity of the outputs, byte
    identity on the recording build, and peak memory. ``hint`` says how to record a
    missing figure."""
    ref = reference if isinstance(reference, Reference) else Reference.recorded(reference)
    metrics = ref.metrics
    model, recipe = row["model"], row["recipe"]
    if not metrics.get("converted", True):
        status = Status.IMPROVED if row["converted"] else Status.PASS
        return Verdict(model, recipe, "baseline", (
            Row("converted", row["converted"], False, "-", status,
                metrics.get("error") or ""),))
    if not row["converted"]:
        return Verdict(model, recipe, "baseline", (
            Row("converted", False, True, "-", Status.REGRESSION, row.get("error") or ""),))
    rows = [
        _quality(row, ref, tol),
        *_recorded_quality(row, ref, tol),
        _one_sided("size_bytes", row["size_bytes"], metrics["size_bytes"],
                   higher_is_better=False, allowed=metrics["size_bytes"] * tol.size_pct / 100,
                   tol_text=f"+{tol.size_pct} %"),
        _one_sided("gzip_bytes", row["gzip_bytes"], metrics["gzip_bytes"],
                   higher_is_better=False, allowed=metrics["gzip_bytes"] * tol.gzip_pct / 100,
                   tol_text=f"+{tol.gzip_pct} %"),
        _one_sided("sparsity", row["sparsity"], metrics["sparsity"], higher_is_better=True,
                   allowed=tol.sparsity, tol_text=f"-{tol.sparsity}"),
    ]
    rows += _fidelity_rows(ref, tol)
    if row.get(ARTIFACT_FIGURE) is not None:
        rows.append(identity_row(row, ref, hint))
    if MEMORY_FIGURE in row or MEMORY_FIGURE in ref.machine:
        rows += _memory_rows(row, ref, tol, hint)
    return Verdict(model, recipe, "baseline", tuple(rows))


def _quality(row: dict[str, Any], ref: Reference, tol: Tolerances) -> Row:
    """Accuracy against the accepted file on the same rows (a regression needs more
    lost rows than the tolerance allows *and* an exact McNemar p below
    ``accuracy_alpha``), or against the recorded figure in whole test rows."""
    side = ref.side
    if row.get("metric", "accuracy") != "accuracy":
        base = side.accepted_score if side and side.accepted_score is not None \
            else ref.metrics[row["metric"]]
        sign = "-" if row["higher_is_better"] else "+"
        where = "the accepted file, this run" if side and side.accepted_score is not None \
            else f"the recorded figure ({ref.absent})"
        return _one_sided(row["metric"], row["score"], base,
                          higher_is_better=row["higher_is_better"],
                          allowed=row["metric_tolerance"],
                          tol_text=f"{sign}{row['metric_tolerance']:.4g}", note=f"vs {where}")
    if side is not None and side.paired is not None:
        paired = side.paired
        allowed = rows_within(tol.accuracy_pts, paired.rows)
        tol_text = f"-{tol.accuracy_pts} pts ({allowed} rows), p < {tol.accuracy_alpha}"
        p_worse, p_better = paired.p_worse(), paired.p_better()
        if paired.net_lost > allowed and p_worse < tol.accuracy_alpha:
            status = Status.REGRESSION
        elif -paired.net_lost > allowed and p_better < tol.accuracy_alpha:
            status = Status.IMPROVED
        else:
            status = Status.PASS
        p = p_better if paired.net_lost < 0 else p_worse
        note = (f"same {paired.rows} rows as the accepted file: {paired.lost} lost, "
                f"{paired.gained} gained, McNemar p={p:.2g}")
        return Row("accuracy", row["accuracy"], side.accepted_accuracy, tol_text, status, note,
                   headroom=_headroom(paired.net_lost, allowed))
    rows = int(row.get("test_rows") or 0)
    base = ref.metrics["accuracy"]
    if not rows:
        return _one_sided("accuracy", row["accuracy"], base, higher_is_better=True,
                          allowed=tol.accuracy_pts / 100, tol_text=f"-{tol.accuracy_pts} pts",
                          note=f"vs the recorded figure ({ref.absent})")
    allowed = rows_within(tol.accuracy_pts, rows)
    lost = round((base - row["accuracy"]) * rows)
    status = Status.REGRESSION if lost > allowed \
        else Status.IMPROVED if -lost > allowed else Status.PASS
    return Row("accuracy", row["accuracy"], base,
               f"-{tol.accuracy_pts} pts ({allowed} rows)", status,
               f"{lost:+d} rows vs the recorded figure ({ref.absent})",
               headroom=_headroom(lost, allowed))


def _recorded_quality(row: dict[str, Any], ref: Reference, tol: Tolerances) -> list[Row]:
    """The accepted file's accuracy on this machine and runtime against the figure it was
    accepted with: the same bytes scoring worse here means the runtime changed under
    them (a kernel bug after an upgrade), which side by side cannot see. In whole test
    rows, at least one row of slack: XNNPACK's int8 kernels round differently per ISA
    (measured: top-1 agreement 99.75 % between two kernel paths on digits)."""
    side = ref.side
    if side is None or side.accepted_accuracy is None or "accuracy" not in ref.metrics \
            or row.get("metric", "accuracy") != "accuracy" or side.paired is None:
        return []
    rows = side.paired.rows
    allowed = max(rows_within(tol.accuracy_pts, rows), 1)
    lost = round((ref.metrics["accuracy"] - side.accepted_accuracy) * rows)
    status = Status.REGRESSION if lost > allowed else Status.PASS
    return [Row("accuracy (recorded)", side.accepted_accuracy, ref.metrics["accuracy"],
                f"-{allowed} rows", status,
                f"the accepted file here, {lost:+d} rows against the figure it was accepted "
                "with", headroom=_headroom(lost, allowed))]


def _fidelity_rows(ref: Reference, tol: Tolerances) -> list[Row]:
    """The new file's outputs against the accepted file's, both run in this process: what
    replaces byte identity across machines. Top-1 agreement always; the largest output
    difference (a fraction of the accepted outputs' range) for recipes that do not
    fine-tune, whose conversions are byte-identical across machine classes for the same
    inputs and versions (a fine-tune on another ISA moves outputs far more: measured up
    to 0.65 on digits_dscnn prune). Judged only when the model, data and recipe are the
    ones the baseline came from: a changed model is expected to predict differently."""
    side = ref.side
    if side is None or side.identical or side.agreement is None:
        return []
    diff = side.max_output_diff or 0.0
    judged = ref.inputs_recorded and not ref.changed_inputs
    why = ("" if judged else
           f"not judged: {', '.join(ref.changed_inputs)} changed since the baseline"
           if ref.changed_inputs else
           "not judged: the baseline records no input digests, so a changed model cannot "
           "be told apart")

    def row(metric: str, measured: float, limit: float, ok: bool, note: str,
            tol_text: str, headroom: float) -> Row:
        if not judged:
            return Row(metric, measured, limit, tol_text, Status.INFO, why,
                       missing=not ref.inputs_recorded)
        return Row(metric, measured, limit, tol_text,
                   Status.PASS if ok else Status.REGRESSION, note, headroom=headroom)

    rows = [row("agreement with accepted", side.agreement, tol.fidelity_agreement,
                side.agreement >= tol.fidelity_agreement - EPSILON,
                f"top-1 on the test split; max output difference {diff:.3g} of the range",
                ">= limit", _headroom(1 - side.agreement, 1 - tol.fidelity_agreement))]
    if not ref.finetuned:
        rows.append(row("output difference vs accepted", diff, tol.fidelity_output,
                        diff <= tol.fidelity_output + EPSILON,
                        "a conversion without fine-tuning gives the same file on any "
                        "machine for the same inputs and versions", "<= limit",
                        _headroom(diff, tol.fidelity_output)))
    return rows


def identity_row(row: dict[str, Any], ref: Reference, hint: str) -> Row:
    """The new file's sha256 against the accepted one: compared only on the build
    (versions, Python, machine class) and inputs that recorded it."""
    measured, recorded = row[ARTIFACT_FIGURE], ref.metrics.get(ARTIFACT_FIGURE)
    cached = ("from the result cache, not converted in this run" if row.get("cached")
              else "converted in this run")
    if recorded is None:
        return Row(ARTIFACT_FIGURE, measured[:12], None, "identical", Status.REGRESSION,
                   f"no baseline for {ARTIFACT_FIGURE}; create it with: {hint}", missing=True)
    if measured == recorded:
        return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.PASS, cached)
    if ref.changed_inputs:
        return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.INFO,
                   f"{', '.join(ref.changed_inputs)} changed since the baseline")
    if not ref.inputs_recorded:
        return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.INFO,
                   "the baseline records no input digests, so a changed model cannot be "
                   f"told from nondeterminism; record them with: {hint}", missing=True)
    if ref.build_changes:
        return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.INFO,
                   "bytes are compared on the recording build only; here "
                   f"{'; '.join(ref.build_changes)}"
                   + ("" if ref.side is None else ": outputs compared side by side instead"))
    if ref.nondeterministic:
        return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.INFO,
                   f"declared not byte-reproducible: {ref.nondeterministic}")
    return Row(ARTIFACT_FIGURE, measured[:12], recorded[:12], "identical", Status.REGRESSION,
               f"same model, data, recipe, versions and machine class gave a different "
               f".tflite ({cached})")


def _memory_rows(row: dict[str, Any], ref: Reference, tol: Tolerances, hint: str) -> list[Row]:
    """Peak memory against the accepted file measured in this run (any machine), and
    against the figure recorded for this machine class (a runtime that grew)."""
    measured, tol_text = row.get(MEMORY_FIGURE), f"+{tol.memory_pct} % +{tol.memory_kib:g} KiB"
    if measured is None:
        return [Row(MEMORY_FIGURE, None, ref.machine.get(MEMORY_FIGURE), tol_text, Status.FAIL,
                    row.get("memory_error") or "not measured")]
    out = []
    side = ref.side
    if side is not None and not side.identical and side.accepted_memory is not None:
        out.append(_one_sided("peak memory vs accepted", measured, side.accepted_memory,
                              higher_is_better=False,
                              allowed=tol.memory_allowed(side.accepted_memory),
                              tol_text=tol_text, note="both measured in this run"))
    base = ref.machine.get(MEMORY_FIGURE)
    if base is None:
        out.append(Row(MEMORY_FIGURE, measured, None, tol_text, Status.SKIPPED,
                       f"no record for machine class {ref.machine_class or 'of this machine'}"
                       f": a runtime that needs more memory would go unseen here; "
                       f"record it with: {hint}", missing=True))
    else:
        out.append(_one_sided(MEMORY_FIGURE, measured, base, higher_is_better=False,
                              allowed=tol.memory_allowed(base), tol_text=tol_text,
                              note="recorded for this machine class"))
    return out


def check_latency(model: str, recipe: str, pairs: LatencyPairs | None, promise: Promise,
                  baseline_ratio: float | None, tol: Tolerances, *,
                  baseline_interval: tuple[float, float] | None = None,
                  side: LatencyPairs | None = None, side_note: str = "",
                  side_identical: bool = False,
                  machine_class: str = "", hint: str = "--compressgate-update=missing",
                  processes: Sequence[LatencyPairs] = (),
                  recorded_processes: Sequence[float] = ()) -> Verdict:
    """Latency from this run's interleaved pairs, two ways.

    Side by side (any machine): the new file against the accepted one (``side``:
    candidate = new, reference = accepted); a regression is new/accepted significantly
    above ``1 + latency_pct``. This catches a slower artifact.

    Against this machine class's record: the recipe/float ratio (``pairs``) against
    ``baseline_ratio``; a regression needs the ratio worse than the recorded one by more
    than the tolerance, counted from the edge of its recorded 95 % interval, *and* the
    per-pair difference significant (exact sign test, p < alpha). This catches a slower
    runtime (the same file, slower kernels). Without a record for this class it is
    skipped, with a note saying how to add it. A record made from several processes
    (``recorded_processes``) is judged by ``envelope`` on this run's ``processes``.

    ``side_identical``: the new file is the accepted one (same bytes, same speed), said
    in ``side_note``. A regression timed while other tasks competed for the machine is
    not judged (skipped, with the load): contention moves cache-bound kernels more than
    the float reference, so a busy machine can move a ratio as far as a real slowdown.
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
    elif side_note:
        rows.append(Row("time vs accepted", None, None, "-",
                        Status.PASS if side_identical else Status.SKIPPED, side_note))
    where = machine_class or "this machine"
    if baseline_ratio is None:
        rows.append(Row("latency_ratio", ratio, None, "-", Status.SKIPPED,
                        f"no latency record for machine class {where}: a slower runtime "
                        f"would go unseen here; record it with: {hint}", missing=True))
    elif recorded_processes and processes:
        rows.append(envelope.row(recorded_processes, processes, factor, tol.alpha,
                                 busy_factor=BUSY_FACTOR))
    else:
        b_low, b_high = baseline_interval or (baseline_ratio, baseline_ratio)
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
        return Row(row.metric, row.measured, row.expected, row.tolerance, row.status,
                   f"{row.note}; {load}, and still beyond {BUSY_FACTOR:g}x the limit",
                   row.missing, row.headroom)
    return Row(row.metric, row.measured, row.expected, row.tolerance, Status.SKIPPED,
               f"{load}: would be a regression ({row.note}), within what contention "
               f"moves ({BUSY_FACTOR:g}x the limit); not judged, re-run on a quiet machine",
               row.missing, row.headroom)


def check_targets(row: dict[str, Any], promise: Promise, accepted: dict[str, Any],
                  tol: Tolerances, hint: str = "--compressgate-update=missing") -> Verdict:
    """Where the file runs besides LiteRT with XNNPACK (``compressgate.measure.targets``):
    LiteRT's reference kernels against XNNPACK (``promise.min_kernel_agreement``) and, for
    each runtime in ``row["targets"]``, TFLM: it loads, its outputs equal the reference
    kernels' (integer outputs: within ``promise.max_tflm_quanta``, default one quantum), its
    arena fits ``promise.max_arena_kib`` and has not grown against ``accepted`` (the
    baseline's metrics) by more than ``tol.arena_pct``."""
    model, recipe = row["model"], row["recipe"]
    if not row["converted"]:
        return _not_converted(row, TARGETS_CHECK)
    if row.get("targets_error"):
        return Verdict(model, recipe, TARGETS_CHECK, (
            Row("target measurement", None, "measured", "-", Status.FAIL, row["targets_error"]),))
    agreement, quanta = row.get("kernel_agreement"), row.get("kernel_max_quanta")
    said = f"top-1, XNNPACK vs reference kernels; max difference {fmt(quanta)} quanta"
    limit = promise.min_kernel_agreement
    rows = [Row("kernel agreement", agreement, limit, ">= limit" if limit is not None else "-",
                Status.INFO if limit is None else
                Status.PASS if agreement is not None and agreement >= limit - EPSILON
                else Status.FAIL, said if limit is not None else f"{said} (no promise)")]
    if "tflm" in (row.get("targets") or ()):
        rows += _tflm_rows(row, promise, accepted, tol, hint)
    return Verdict(model, recipe, TARGETS_CHECK, tuple(rows))


def _tflm_rows(row: dict[str, Any], promise: Promise, accepted: dict[str, Any],
               tol: Tolerances, hint: str) -> list[Row]:
    loads, why = row.get("tflm_loads"), row.get("tflm_error") or ""
    if loads is None:  # tflite-micro missing here: not judged, and said in one line
        return [Row("runs on TFLM", None, True, "-", Status.SKIPPED, why or "not measured")]
    if not loads:
        return [Row("runs on TFLM", False, True, "-", Status.FAIL, why)]
    version = row.get("tflm_version") or "?"
    rows = [Row("runs on TFLM", True, True, "-", Status.PASS, f"tflite-micro {version}")]
    quanta, allowed = row.get("tflm_max_quanta"), promise.max_tflm_quanta
    allowed = DEFAULT_TFLM_QUANTA if allowed is None else allowed
    if quanta is not None:
        rows.append(Row("TFLM vs reference kernels (quanta)", quanta, allowed, "<= limit",
                        Status.PASS if quanta <= allowed else Status.FAIL,
                        f"largest output difference on the first {fmt(row.get('target_rows'))} "
                        f"test rows; top-1 agreement {fmt(row.get('tflm_ref_agreement'))}"))
    else:
        rows.append(Row("TFLM vs reference kernels", row.get("tflm_max_diff"), None, "-",
                        Status.INFO, "float outputs: largest difference as a fraction of "
                        f"the range; top-1 agreement {fmt(row.get('tflm_ref_agreement'))}"))
    if row.get("tflm_accuracy") is not None:
        rows.append(Row("TFLM accuracy", row["tflm_accuracy"], row.get("litert_rows_accuracy"),
                        "-", Status.INFO, f"on the first {fmt(row.get('target_rows'))} test "
                        "rows, against LiteRT with XNNPACK on the same rows"))
    arena = row.get(ARENA_FIGURE)
    if arena is None:
        return [*rows, Row(ARENA_FIGURE, None, None, "-", Status.FAIL,
                           "TFLM printed no arena allocation total")]
    if promise.max_arena_kib is not None:
        kib = round(arena / 1024, 2)
        rows.append(Row("arena KiB", kib, promise.max_arena_kib, "<= budget",
                        Status.PASS if kib <= promise.max_arena_kib else Status.FAIL,
                        "promise.max_arena_kib"))
    base, tol_text = accepted.get(ARENA_FIGURE), f"+{tol.arena_pct} %"
    if base is None:
        rows.append(Row(ARENA_FIGURE, arena, None, tol_text, Status.SKIPPED,
                        f"not judged: no accepted arena figure; record with: {hint}",
                        missing=True))
    else:
        then = accepted.get("tflm_version")
        note = "accepted" + ("" if then in (None, version)
                             else f" with tflite-micro {then} (now {version})")
        rows.append(_one_sided(ARENA_FIGURE, arena, base, higher_is_better=False,
                               allowed=base * tol.arena_pct / 100, tol_text=tol_text, note=note))
    return rows


def absolute_failures(row: dict[str, Any], promise: Promise) -> list[str]:
    """Why a result must not become a baseline (conversion or the accuracy limit)."""
    reasons = []
    for verdict in (check_conversion(row, promise), check_accuracy(row, promise)):
        reasons += [f"{verdict.check}: {r.metric} {fmt(r.measured)}" for r in verdict.regressions]
    return reasons
