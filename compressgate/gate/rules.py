"""Verdicts: pure functions from measured figures (+ promise, + baseline) to pass/fail.

Nothing here imports TensorFlow or touches files, so every rule is unit-testable on
hand-made rows. Comparisons against a baseline are one-sided: getting worse beyond the
tolerance is a regression; getting better beyond it passes but marks the baseline stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compressgate.gate.baselines import (
    ARTIFACT_FIGURE,
    MEMORY_FIGURE,
    UPDATE_MISSING,
)
from compressgate.gate.records import Row, Status, Verdict, fmt
from compressgate.measure.stats import (
    SideBySide,
    rows_within,
)
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

CHECKS = ("conversion", "accuracy", "size", "baseline", "latency")
# Run only where a recipe promises a runtime besides LiteRT or a kernel parity.
TARGETS_CHECK = "targets"
# Relative slack of "not worse by more than X" comparisons (float rounding, not tolerance).
EPSILON = 1e-9
# The baseline row on ops left to LiteRT's built-in kernels (XNNPACK did not take them).
COVERAGE_ROW = "ops off XNNPACK"
# The float conversion must predict what Keras predicts (float rounding may flip a tie).
KERAS_AGREEMENT = 0.99


def check_conversion(row: ResultRow, promise: Promise) -> Verdict:
    rows = [Row("converted", row.converted, True, "-",
                Status.PASS if row.converted else Status.FAIL, row.error or "")]
    if row.converted:
        if promise.io_dtype:
            for side in ("input_dtype", "output_dtype"):
                dtype = getattr(row, side)
                rows.append(Row(side, dtype, promise.io_dtype, "-",
                                Status.PASS if dtype == promise.io_dtype else Status.FAIL))
        if promise.integer_only:
            floats = row.float_ops
            rows.append(Row("float ops", " ".join(floats) or "none", "none", "-",
                            Status.FAIL if floats else Status.PASS))
        if promise.min_runtime:
            rows.append(_runtime_row(row, promise.min_runtime))
    return Verdict(row.model, row.recipe, "conversion", tuple(rows))


def _runtime_row(row: ResultRow, declared: str) -> Row:
    """The declared oldest runtime against the op versions in the flatbuffer; an op the
    runtime table does not know cannot be vouched for, so it fails too."""
    from compressgate.compat.runtime_versions import judge, requirement

    if not row.op_versions:  # e.g. a row from an older cache: nothing to vouch for
        return Row("min runtime", None, f"<= {declared}", "-", Status.FAIL,
                   "no op versions recorded for this file: cannot vouch for a runtime")
    verdict = judge(requirement(tuple(op) for op in row.op_versions), declared)
    return Row("min runtime", verdict.measured, f"<= {declared}", "-",
               Status.PASS if verdict.ok else Status.FAIL, verdict.note)


def check_accuracy(row: ResultRow, promise: Promise) -> Verdict:
    """The recipe's loss against the float model: accuracy in points (the promise's
    ``max_drop_pts``), or a custom metric in its own units (the metric's ``max_loss``)."""
    if not row.is_accuracy:
        return _check_metric(row)
    drop = row.accuracy_drop_pts
    if drop is None:
        return _not_converted(row, "accuracy")
    ok = drop < promise.max_drop_pts
    note = f"{row.accuracy:.4f} vs float {row.float_accuracy:.4f}"
    lost = row.finetune_drop_pts
    if not ok and lost is not None and lost >= promise.max_drop_pts:
        # The float model was already past the promise: quantization is not the cause.
        note += f"; fine-tuning lost {lost:.2f} pts before quantization"
    rows = [Row("accuracy drop (pts)", drop, promise.max_drop_pts, "< limit",
                Status.PASS if ok else Status.FAIL, note)]
    agreement = row.keras_agreement
    if agreement is not None:  # the float reference: is the conversion faithful?
        rows.append(Row("top-1 agreement with Keras", agreement, KERAS_AGREEMENT, ">= limit",
                        Status.PASS if agreement >= KERAS_AGREEMENT else Status.FAIL))
    return Verdict(row.model, row.recipe, "accuracy", tuple(rows))


def _check_metric(row: ResultRow) -> Verdict:
    loss = row.metric_loss
    if loss is None:
        return _not_converted(row, "accuracy")
    better = "higher" if row.higher_is_better else "lower"
    return Verdict(row.model, row.recipe, "accuracy", (
        Row(f"{row.metric} loss", loss, row.max_loss, "< limit",
            Status.PASS if loss < row.max_loss else Status.FAIL,
            f"{row.score:.6g} vs float {row.float_score:.6g}, {better} is better",
            key="metric_loss"),))


def check_size(row: ResultRow, promise: Promise) -> Verdict:
    if row.size_ratio is None:
        return _not_converted(row, "size")
    rows = []
    for metric, limit in (("size_ratio", promise.min_size_ratio),
                          ("gzip_ratio", promise.min_gzip_ratio)):
        if limit is not None:
            ratio = getattr(row, metric)
            rows.append(Row(metric, ratio, limit, ">= limit",
                            Status.PASS if ratio >= limit else Status.FAIL))
    if promise.max_clusters is not None:
        rows.append(_clusters_row(row, promise.max_clusters))
    if not rows:
        rows.append(Row("size_ratio", row.size_ratio, None, "no promise", Status.SKIPPED,
                        "the recipe promises no size ratio"))
    return Verdict(row.model, row.recipe, "size", tuple(rows))


def _clusters_row(row: ResultRow, limit: int) -> Row:
    """Clustering must be visible in the file: a clustering lost on the way (a stage
    skipped, a QAT that re-learned free weights) leaves many values per channel."""
    measured = row.clusters.max if row.clusters is not None else None
    ok = measured is not None and measured <= limit
    return Row("distinct values per channel (max)", measured, limit, "<= limit",
               Status.PASS if ok else Status.FAIL,
               "" if measured is not None else "no weight tensors counted in this file")


def _not_converted(row: ResultRow, check: str) -> Verdict:
    return Verdict(row.model, row.recipe, check, (
        Row("converted", False, True, "-", Status.FAIL, row.error or "no result"),))


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


def check_baseline(row: ResultRow, reference: Reference | dict[str, Any],
                   tol: Tolerances, hint: str = UPDATE_MISSING) -> Verdict:
    """Against the accepted result: quality (paired on the same test rows when the
    accepted file is at hand), size, gzip size, sparsity, fidelity of the outputs, byte
    identity on the recording build, and peak memory. ``hint`` says how to record a
    missing figure."""
    ref = reference if isinstance(reference, Reference) else Reference.recorded(reference)
    metrics = ref.metrics
    model, recipe = row.model, row.recipe
    if not metrics.get("converted", True):
        status = Status.IMPROVED if row.converted else Status.PASS
        return Verdict(model, recipe, "baseline", (
            Row("converted", row.converted, False, "-", status,
                metrics.get("error") or ""),))
    if not row.converted:
        return Verdict(model, recipe, "baseline", (
            Row("converted", False, True, "-", Status.REGRESSION, row.error or ""),))
    rows = [
        _quality(row, ref, tol),
        *_recorded_quality(row, ref, tol),
        _one_sided("size_bytes", row.size_bytes, metrics["size_bytes"],
                   higher_is_better=False, allowed=metrics["size_bytes"] * tol.size_pct / 100,
                   tol_text=f"+{tol.size_pct} %"),
        _one_sided("gzip_bytes", row.gzip_bytes, metrics["gzip_bytes"],
                   higher_is_better=False, allowed=metrics["gzip_bytes"] * tol.gzip_pct / 100,
                   tol_text=f"+{tol.gzip_pct} %"),
        _one_sided("sparsity", row.sparsity, metrics["sparsity"], higher_is_better=True,
                   allowed=tol.sparsity, tol_text=f"-{tol.sparsity}"),
    ]
    rows += _fidelity_rows(ref, tol)
    rows += _coverage_rows(row, ref)
    if row.tflite_sha256 is not None:
        rows.append(identity_row(row, ref, hint))
    if row.memory is not None or MEMORY_FIGURE in ref.machine:
        rows += _memory_rows(row, ref, tol, hint)
    return Verdict(model, recipe, "baseline", tuple(rows))


def _quality(row: ResultRow, ref: Reference, tol: Tolerances) -> Row:
    """Accuracy against the accepted file on the same rows (a regression needs more
    lost rows than the tolerance allows *and* an exact McNemar p below
    ``accuracy_alpha``), or against the recorded figure in whole test rows."""
    side = ref.side
    if not row.is_accuracy:
        base = side.accepted_score if side and side.accepted_score is not None \
            else ref.metrics[row.metric]
        sign = "-" if row.higher_is_better else "+"
        where = "the accepted file, this run" if side and side.accepted_score is not None \
            else f"the recorded figure ({ref.absent})"
        return _one_sided(row.metric, row.score, base,
                          higher_is_better=row.higher_is_better,
                          allowed=row.metric_tolerance,
                          tol_text=f"{sign}{row.metric_tolerance:.4g}", note=f"vs {where}")
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
        return Row("accuracy", row.accuracy, side.accepted_accuracy, tol_text, status, note,
                   headroom=_headroom(paired.net_lost, allowed))
    rows = int(row.test_rows or 0)
    base = ref.metrics["accuracy"]
    if not rows:
        return _one_sided("accuracy", row.accuracy, base, higher_is_better=True,
                          allowed=tol.accuracy_pts / 100, tol_text=f"-{tol.accuracy_pts} pts",
                          note=f"vs the recorded figure ({ref.absent})")
    allowed = rows_within(tol.accuracy_pts, rows)
    lost = round((base - row.accuracy) * rows)
    status = Status.REGRESSION if lost > allowed \
        else Status.IMPROVED if -lost > allowed else Status.PASS
    return Row("accuracy", row.accuracy, base,
               f"-{tol.accuracy_pts} pts ({allowed} rows)", status,
               f"{lost:+d} rows vs the recorded figure ({ref.absent})",
               headroom=_headroom(lost, allowed))


def _recorded_quality(row: ResultRow, ref: Reference, tol: Tolerances) -> list[Row]:
    """The accepted file's accuracy on this machine and runtime against the figure it was
    accepted with: the same bytes scoring worse here means the runtime changed under
    them (a kernel bug after an upgrade), which side by side cannot see. In whole test
    rows, at least one row of slack: XNNPACK's int8 kernels round differently per ISA
    (measured: top-1 agreement 99.75 % between two kernel paths on digits)."""
    side = ref.side
    if side is None or side.accepted_accuracy is None or "accuracy" not in ref.metrics \
            or not row.is_accuracy or side.paired is None:
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


def _coverage_rows(row: ResultRow, ref: Reference) -> list[Row]:
    """Ops left to LiteRT's built-in kernels against the accepted file, both planned by
    this run's interpreter on this machine: an op that XNNPACK took in the accepted file
    (or that it lacked) and that the new file leaves off XNNPACK is a regression, judged
    on any machine and whatever changed (a model change that adds an op XNNPACK cannot
    run is what this row is for). Fewer ops off XNNPACK is an improvement."""
    side, now = ref.side, row.coverage
    if side is None or side.accepted_coverage is None or now is None:
        return []
    then = side.accepted_coverage
    newly = now.newly_off(then)
    fewer = then.newly_off(now)
    status = Status.REGRESSION if newly else Status.IMPROVED if fewer else Status.PASS
    if newly:
        note = "ops off XNNPACK: " + ", ".join(f"{op} {a} -> {b}" for op, a, b in newly)
    elif fewer:
        note = "back on XNNPACK: " + ", ".join(f"{op} {was} -> {off}"
                                               for op, off, was in fewer)
    else:
        note = now.describe()
    return [Row(COVERAGE_ROW, now.off, then.off, "no op newly off", status,
                f"{note} (the accepted file side by side, this run)")]


def identity_row(row: ResultRow, ref: Reference, hint: str) -> Row:
    """The new file's sha256 against the accepted one: compared only on the build
    (versions, Python, machine class) and inputs that recorded it."""
    measured, recorded = row.tflite_sha256, ref.metrics.get(ARTIFACT_FIGURE)
    assert measured is not None
    cached = ("from the result cache, not converted in this run" if row.cached
              else "converted in this run")
    if recorded is None and ref.build_changes:
        # Bytes made here would be recorded as another build's: nothing to add here.
        return Row(ARTIFACT_FIGURE, measured[:12], None, "identical", Status.INFO,
                   "no sha256 recorded; it is recorded on the build that recorded this "
                   f"baseline only; here {'; '.join(ref.build_changes)}")
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


def _memory_rows(row: ResultRow, ref: Reference, tol: Tolerances, hint: str) -> list[Row]:
    """Peak memory against the accepted file measured in this run (any machine), and
    against the figure recorded for this machine class (a runtime that grew)."""
    measured, tol_text = row.peak_memory, f"+{tol.memory_pct} % +{tol.memory_kib:g} KiB"
    if measured is None:
        why = row.memory.error if row.memory is not None else None
        return [Row(MEMORY_FIGURE, None, ref.machine.get(MEMORY_FIGURE), tol_text, Status.FAIL,
                    why or "not measured")]
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


def absolute_failures(row: ResultRow, promise: Promise) -> list[str]:
    """Why a result must not become a baseline (conversion or the accuracy limit)."""
    reasons = []
    for verdict in (check_conversion(row, promise), check_accuracy(row, promise)):
        reasons += [f"{verdict.check}: {r.metric} {fmt(r.measured)}" for r in verdict.regressions]
    return reasons
