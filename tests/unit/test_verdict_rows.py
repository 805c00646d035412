"""What the verdict rules of ``compressgate.gate`` say, row by row: the metric, what was
measured against what, the tolerance text, the status and the note a user reads, and the
headroom the reports plot. Written against the mutants that ``tox -e mutation`` found
surviving the other unit tests (see README "Testing"). No TensorFlow, no timing."""

import dataclasses
import math

import pytest

from compressgate.gate import baselines, rules
from compressgate.gate.baselines import UPDATE_MISSING
from compressgate.gate.latency import LatencyReference, check_latency
from compressgate.gate.records import CheckRecord, Row, Update, Verdict
from compressgate.gate.rules import Reference
from compressgate.measure.stats import LatencyPairs, PairedOutcome, SideBySide
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

TOL = Tolerances()
SHA_NEW = "0123456789abcdef" * 4
SHA_OLD = "fedcba9876543210" * 4


def row(**overrides):
    return ResultRow.from_dict({
            "model": "m", "recipe": "ptq_int8", "converted": True, "error": None,
            "accuracy": 0.97, "float_accuracy": 0.98, "accuracy_drop_pts": 1.0,
            "size_bytes": 1000, "size_ratio": 4.0, "gzip_bytes": 800, "gzip_ratio": 4.5,
            "sparsity": 0.5, "input_dtype": "int8", "output_dtype": "int8",
            "float_ops": []} | overrides)


METRICS = {"accuracy": 0.97, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.5}


def metric_row(name, rows):
    return next(r for r in rows if r.metric == name)


# -- how a row and a verdict read ---------------------------------------------------------

def test_a_row_reason_reads_accepted_then_measured_then_limit_then_why():
    assert Row("size_bytes", 1020, 1000, "+1.0 %", "regression", "too big").reason() == \
        "size_bytes 1000 -> 1020 (+1.0 %): too big"
    assert Row("accuracy", 0.912345, 0.97, "", "pass").reason() == "accuracy 0.97 -> 0.9123"
    assert Row("converted", False, True, "-", "fail").reason() == "converted True -> False"
    assert Row("baseline", None, "b/m/r.json", "-", "fail", "missing").reason() == \
        "baseline b/m/r.json -> -: missing"


def test_the_verdict_table_aligns_four_columns_and_lists_notes():
    verdict = Verdict("m", "ptq_int8", "size", (
        Row("size_ratio", 3.9, 3.5, ">= limit", "pass"),
        Row("gzip", None, 8.0, "-", "fail", "below"),
    ), ("one note",))
    assert verdict.table() == "\n".join([
        "m x ptq_int8: size",
        "  metric      measured  baseline/limit  tolerance  verdict",
        "  size_ratio  3.9       3.5             >= limit   pass",
        "  gzip        -         8               -          fail (below)",
        "  note: one note",
    ])


def test_verdict_lists_split_rows_by_status():
    rows = tuple(Row(s, 1, 1, "-", s) for s in
                 ("pass", "fail", "regression", "improved", "skipped", "info"))
    verdict = Verdict("m", "r", "baseline", rows)
    assert verdict.failed
    assert [r.metric for r in verdict.regressions] == ["fail", "regression"]
    assert [r.metric for r in verdict.stale] == ["improved"]
    assert [r.metric for r in verdict.skipped] == ["skipped"]
    assert not Verdict("m", "r", "baseline", rows[3:]).failed


def test_tolerances_from_a_config_table_refuse_an_unknown_field():
    """The project config validates ``Tolerances`` with pydantic (``project.config``); the
    dataclass itself forbids names it does not have."""
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(Tolerances)
    assert adapter.validate_python({"size_pct": 2.0, "memory_kib": 64}) == \
        Tolerances(size_pct=2.0, memory_kib=64)
    with pytest.raises(ValidationError, match=r"bogus\n  Unexpected keyword argument"):
        adapter.validate_python({"bogus": 1})


def test_memory_allowance_is_a_percentage_plus_a_fixed_kib_slack():
    assert TOL.memory_allowed(1_000_000) == 50_000 + 128 * 1024
    assert Tolerances(memory_pct=10, memory_kib=0).memory_allowed(2_000) == 200


# -- absolute checks ----------------------------------------------------------------------

FULL_INT8 = Promise(io_dtype="int8", integer_only=True, min_runtime="2.14")


def test_conversion_rows_for_a_full_integer_promise():
    verdict = rules.check_conversion(
        row(output_dtype="float32", float_ops=["DEQUANTIZE", "FULLY_CONNECTED"],
            op_versions=[["FULLY_CONNECTED", 12]]), FULL_INT8)
    assert (verdict.model, verdict.recipe, verdict.check) == ("m", "ptq_int8", "conversion")
    assert verdict.rows == (
        Row("converted", True, True, "-", "pass", ""),
        Row("input_dtype", "int8", "int8", "-", "pass"),
        Row("output_dtype", "float32", "int8", "-", "fail"),
        Row("float ops", "DEQUANTIZE FULLY_CONNECTED", "none", "-", "fail"),
        Row("min runtime", "needs runtime >= 2.17.0", "<= 2.14", "-", "fail",
            "FULLY_CONNECTED v12 needs runtime 2.17.0 > declared 2.14"),
    )


def test_a_clean_full_integer_conversion_passes_every_row():
    verdict = rules.check_conversion(row(op_versions=[["FULLY_CONNECTED", 1], ["ADD", 1]]),
                                    FULL_INT8)
    assert verdict.rows[3:] == (
        Row("float ops", "none", "none", "-", "pass"),
        Row("min runtime", "needs runtime >= 1.5.0", "<= 2.14", "-", "pass", ""),
    )
    assert not verdict.failed


def test_an_op_the_runtime_table_does_not_know_cannot_pass_a_declared_runtime():
    verdict = rules.check_conversion(row(op_versions=[["NO_SUCH_OP", 1]]),
                                    Promise(min_runtime="2.14"))
    assert verdict.rows[-1] == Row("min runtime", "needs runtime: unknown", "<= 2.14", "-",
                                   "fail", "not in TensorFlow's runtime table: NO_SUCH_OP v1")


def test_a_failed_conversion_is_one_row_with_the_error():
    failed = rules.check_conversion(row(converted=False, error="LSTM not supported"), FULL_INT8)
    assert failed.rows == (Row("converted", False, True, "-", "fail", "LSTM not supported"),)
    quiet = rules.check_conversion(row(converted=False, error=None), FULL_INT8)
    assert quiet.rows == (Row("converted", False, True, "-", "fail", ""),)


def test_accuracy_rows_against_float_and_keras():
    verdict = rules.check_accuracy(row(accuracy=0.9712, float_accuracy=0.9801,
                                      accuracy_drop_pts=0.89, keras_agreement=0.995),
                                  Promise(max_drop_pts=2.0))
    assert (verdict.model, verdict.recipe, verdict.check) == ("m", "ptq_int8", "accuracy")
    assert verdict.rows == (
        Row("accuracy drop (pts)", 0.89, 2.0, "< limit", "pass", "0.9712 vs float 0.9801"),
        Row("top-1 agreement with Keras", 0.995, 0.99, ">= limit", "pass"),
    )


# The float fine-tune alone lost the whole promise (2.0 pts), or more: it is named.
@pytest.mark.parametrize(("lost", "said"), [(3.5, True), (2.0, True), (1.25, False),
                                            (None, False)])
def test_a_failed_drop_says_when_the_float_fine_tune_had_already_lost_it(lost, said):
    failing = row(recipe="prune_int8", accuracy=0.90, float_accuracy=0.95,
                  accuracy_drop_pts=5.0, finetune_drop_pts=lost)
    note = rules.check_accuracy(failing, Promise(max_drop_pts=2.0)).rows[0].note
    assert ("fine-tuning lost" in note) is said
    if said:
        assert note.endswith(f"; fine-tuning lost {lost:.2f} pts before quantization")
    assert note.startswith("0.9000 vs float 0.9500")
    # A drop within the promise never blames the fine-tune.
    passing = dataclasses.replace(failing, accuracy_drop_pts=1.0)
    assert "fine-tuning" not in rules.check_accuracy(passing, Promise()).rows[0].note
    assert ResultRow.from_dict(failing.to_dict()).finetune_drop_pts == lost


@pytest.mark.parametrize("check", [rules.check_accuracy, rules.check_size])
def test_no_result_reads_as_not_converted_under_its_own_check(check):
    name = check.__name__.removeprefix("check_")
    empty = row(accuracy_drop_pts=None, size_ratio=None)
    assert check(empty, Promise()) == Verdict("m", "ptq_int8", name, (
        Row("converted", False, True, "-", "fail", "no result"),))
    assert check(dataclasses.replace(empty, error="OOM"), Promise()).rows[0].note == "OOM"


def custom(**overrides):
    return row(**{"metric": "mae", "metric_loss": 0.02, "max_loss": 0.05, "score": 0.123456789,
                  "float_score": 0.1, "higher_is_better": False, "metric_tolerance": 0.05}
               | overrides)


def test_a_custom_metric_is_judged_in_its_own_units_with_its_direction():
    verdict = rules.check_accuracy(custom(), Promise())
    assert verdict == Verdict("m", "ptq_int8", "accuracy", (
        Row("mae loss", 0.02, 0.05, "< limit", "pass",
            "0.123457 vs float 0.1, lower is better", key="metric_loss"),))
    higher = rules.check_accuracy(custom(metric="r2", higher_is_better=True, metric_loss=0.05),
                                 Promise())
    assert higher.rows == (Row("r2 loss", 0.05, 0.05, "< limit", "fail",
                               "0.123457 vs float 0.1, higher is better", key="metric_loss"),)
    missing = rules.check_accuracy(custom(metric_loss=None, error="no score"), Promise())
    assert missing == Verdict("m", "ptq_int8", "accuracy", (
        Row("converted", False, True, "-", "fail", "no score"),))


def test_baseline_figures_store_a_custom_metric_under_its_own_name():
    assert baselines.judged_figures(custom(score=0.12)) == {
        "mae": 0.12, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.5}
    assert baselines.judged_figures(row()) == {
        "accuracy": 0.97, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.5}


def test_size_rows_for_both_promises_and_for_none():
    both = rules.check_size(row(size_ratio=3.6, gzip_ratio=7.9),
                           Promise(min_size_ratio=3.5, min_gzip_ratio=8.0))
    assert both == Verdict("m", "ptq_int8", "size", (
        Row("size_ratio", 3.6, 3.5, ">= limit", "pass"),
        Row("gzip_ratio", 7.9, 8.0, ">= limit", "fail")))
    none = rules.check_size(row(size_ratio=3.6), Promise())
    assert none.rows == (Row("size_ratio", 3.6, None, "no promise", "skipped",
                             "the recipe promises no size ratio"),)


def test_absolute_failures_name_every_failed_row_of_both_checks():
    broken = row(input_dtype="float32", accuracy_drop_pts=3.0)
    assert rules.absolute_failures(broken, Promise(io_dtype="int8")) == [
        "conversion: input_dtype float32", "accuracy: accuracy drop (pts) 3"]
    assert rules.absolute_failures(row(), Promise(io_dtype="int8")) == []


# -- against the baseline: conversion -----------------------------------------------------

def test_a_baseline_that_recorded_a_failed_conversion():
    failed = METRICS | {"converted": False, "error": "old error"}
    now_converts = rules.check_baseline(row(), failed, TOL)
    assert now_converts == Verdict("m", "ptq_int8", "baseline", (
        Row("converted", True, False, "-", "improved", "old error"),))
    still_fails = rules.check_baseline(row(converted=False), {"converted": False}, TOL)
    assert still_fails.rows == (Row("converted", False, False, "-", "pass", ""),)


def test_a_conversion_that_fails_against_a_converted_baseline_regresses():
    assert rules.check_baseline(row(converted=False, error="boom"), METRICS, TOL) == Verdict(
        "m", "ptq_int8", "baseline", (Row("converted", False, True, "-", "regression", "boom"),))
    assert rules.check_baseline(row(converted=False), METRICS, TOL).rows[0].note == ""


# -- against the baseline: recorded figures -----------------------------------------------

def test_every_recorded_figure_reads_in_its_own_units():
    tol = Tolerances(size_pct=2.0, gzip_pct=0.5)
    verdict = rules.check_baseline(row(size_bytes=1010, gzip_bytes=790), METRICS, tol)
    assert verdict == Verdict("m", "ptq_int8", "baseline", (
        Row("accuracy", 0.97, 0.97, "-0.5 pts", "pass",
            "vs the recorded figure (no accepted artifact at hand)", headroom=1.0),
        # 10 bytes of the 20 that 2 % of 1000 allows
        Row("size_bytes", 1010, 1000, "+2.0 %", "pass", headroom=0.5),
        # 10 bytes smaller, 0.5 % of 800 is 4 bytes: the baseline is stale
        Row("gzip_bytes", 790, 800, "+0.5 %", "improved", headroom=3.5),
        Row("sparsity", 0.5, 0.5, "-0.01", "pass", headroom=1.0),
    ))


def test_the_float_slack_scales_with_the_larger_figure():
    """1e-9 of the larger of the two figures (at least 1e-9 absolute) absorbs rounding."""
    def status(measured, base, tol, higher=False):
        verdict = rules.check_baseline(
            custom(score=measured, higher_is_better=higher, metric_tolerance=tol),
            {"mae": base} | METRICS, TOL)
        return verdict.rows[0].status

    # 1e6 + 0.1 is 0.1 + 9e-11 above 1e6 in floats: within 1e-9 * 1e6.
    assert status(1_000_000.1, 1_000_000.0, 0.1) == "pass"
    # 0.005 beyond a 1e7 allowance: within 1e-9 * 1.1e7 = 0.011, whichever figure is larger.
    assert status(11_000_000.005, 1_000_000.0, 10_000_000.0) == "pass"
    assert status(999_999.995, 11_000_000.0, 10_000_000.0, higher=True) == "pass"
    # Below 1 the slack is 1e-9 absolute.
    assert status(0.7e-9, 0.0, 0.0) == "pass"
    assert status(1.5e-9, 0.0, 0.0) == "regression"
    assert status(1e-9, 0.0, 0.0) == "pass"      # exactly the slack: neither way
    assert status(0.0, 1e-9, 0.0) == "pass"
    assert status(0.0, 1.5e-9, 0.0) == "improved"


def test_a_custom_metric_against_the_accepted_file_and_against_the_record():
    side = SideBySide(False, accepted_score=0.2)
    metrics = {"mae": 0.5} | METRICS
    here = rules.check_baseline(custom(score=0.21), Reference(metrics, side=side), TOL)
    assert here.rows[0] == Row("mae", 0.21, 0.2, "+0.05", "pass",
                               "vs the accepted file, this run", headroom=pytest.approx(0.8))
    recorded = rules.check_baseline(
        custom(score=0.47, higher_is_better=True),
        Reference(metrics, side=SideBySide(False), absent="accepted artifact r.tflite absent"),
        TOL)
    assert recorded.rows[0] == Row("mae", 0.47, 0.5, "-0.05", "pass",
                                   "vs the recorded figure (accepted artifact r.tflite absent)",
                                   headroom=pytest.approx(0.4))
    lower = rules.check_baseline(custom(score=0.56), Reference(metrics), TOL).rows[0]
    assert (lower.tolerance, lower.status) == ("+0.05", "regression")


def side(paired, **fields):
    return SideBySide(False, paired=paired, accepted_accuracy=0.97, **fields)


def quality(paired, tol=TOL, accuracy=0.96):
    verdict = rules.check_baseline(row(accuracy=accuracy),
                                  Reference(METRICS, side=side(paired)), tol)
    return verdict.rows[0]


def test_paired_accuracy_reads_rows_lost_gained_and_mcnemar():
    # 4 net rows lost of 400 (2 allowed), but 5 against 1 is not significant.
    assert quality(PairedOutcome(400, 5, 1)) == Row(
        "accuracy", 0.96, 0.97, "-0.5 pts (2 rows), p < 0.05", "pass",
        "same 400 rows as the accepted file: 5 lost, 1 gained, McNemar p=0.11", headroom=-1.0)
    assert quality(PairedOutcome(400, 8, 0)) == Row(
        "accuracy", 0.96, 0.97, "-0.5 pts (2 rows), p < 0.05", "regression",
        "same 400 rows as the accepted file: 8 lost, 0 gained, McNemar p=0.0039", headroom=-3.0)
    better = quality(PairedOutcome(400, 0, 8), accuracy=0.99)
    assert (better.status, better.note) == (
        "improved", "same 400 rows as the accepted file: 0 lost, 8 gained, McNemar p=0.0039")


def test_a_paired_improvement_needs_both_the_rows_and_the_significance():
    wide = Tolerances(accuracy_pts=5.0)          # 20 rows of 400
    assert quality(PairedOutcome(400, 0, 10), wide).status == "pass"   # p=0.001, 10 rows
    five = Tolerances(accuracy_pts=1.25)         # 5 rows of 400
    assert quality(PairedOutcome(400, 0, 5), five).status == "pass"    # exactly 5 rows
    assert quality(PairedOutcome(400, 0, 6), five).status == "improved"
    # p = 1/32 exactly: not below an alpha of 1/32
    assert quality(PairedOutcome(400, 0, 5), Tolerances(accuracy_alpha=1 / 32)).status == \
        "pass"
    assert quality(PairedOutcome(400, 0, 5), Tolerances(accuracy_alpha=0.04)).status == \
        "improved"


def recorded_rows(accuracy, test_rows, tol=TOL):
    verdict = rules.check_baseline(row(accuracy=accuracy, test_rows=test_rows),
                                  Reference(METRICS, absent="no artifact"), tol)
    return verdict.rows[0]


def test_accuracy_against_the_recorded_figure_counts_whole_test_rows():
    assert recorded_rows(0.9625, 400) == Row(
        "accuracy", 0.9625, 0.97, "-0.5 pts (2 rows)", "regression",
        "+3 rows vs the recorded figure (no artifact)", headroom=pytest.approx(-0.5))
    assert recorded_rows(0.965, 400) == Row(
        "accuracy", 0.965, 0.97, "-0.5 pts (2 rows)", "pass",
        "+2 rows vs the recorded figure (no artifact)", headroom=pytest.approx(0.0))
    assert recorded_rows(0.98, 400) == Row(
        "accuracy", 0.98, 0.97, "-0.5 pts (2 rows)", "improved",
        "-4 rows vs the recorded figure (no artifact)", headroom=pytest.approx(3.0))
    # 0.5 points of 100 rows is no whole row: one lost row uses a whole unit of headroom
    assert recorded_rows(0.96, 100).headroom == pytest.approx(0.0)


def test_accuracy_without_a_row_count_is_compared_in_points():
    assert recorded_rows(0.965, None) == Row(
        "accuracy", 0.965, 0.97, "-0.5 pts", "pass", "vs the recorded figure (no artifact)",
        headroom=pytest.approx(0.0, abs=1e-9))
    assert recorded_rows(0.9649, None).status == "regression"


def test_the_accepted_file_scoring_worse_here_than_when_accepted():
    verdict = rules.check_baseline(
        row(accuracy=0.9625), Reference(METRICS, side=SideBySide(
            False, paired=PairedOutcome(400, 0, 0), accepted_accuracy=0.9625)), TOL)
    assert verdict.rows[1] == Row(
        "accuracy (recorded)", 0.9625, 0.97, "-2 rows", "regression",
        "the accepted file here, +3 rows against the figure it was accepted with",
        headroom=pytest.approx(-0.5))
    # 0.5 points of 100 rows rounds to none: one row of slack all the same
    small = Reference(METRICS, side=SideBySide(False, paired=PairedOutcome(100, 0, 0),
                                               accepted_accuracy=0.96))
    one = rules.check_baseline(row(accuracy=0.96), small, TOL).rows[1]
    assert (one.tolerance, one.status) == ("-1 rows", "pass")
    two = rules.check_baseline(row(accuracy=0.95), Reference(METRICS, side=SideBySide(
        False, paired=PairedOutcome(100, 0, 0), accepted_accuracy=0.95)), TOL).rows[1]
    assert (two.status, two.note) == (
        "regression", "the accepted file here, +2 rows against the figure it was accepted with")


def test_the_recorded_quality_row_needs_a_paired_accuracy_measurement():
    def metrics_of(reference, r=None):
        return [x.metric for x in rules.check_baseline(r or row(), reference, TOL).rows]

    unpaired = Reference(METRICS, side=SideBySide(False, accepted_accuracy=0.97))
    assert "accuracy (recorded)" not in metrics_of(unpaired)
    no_accuracy = Reference(METRICS, side=SideBySide(False, paired=PairedOutcome(400, 0, 0)))
    assert "accuracy (recorded)" not in metrics_of(no_accuracy)
    # A model judged on its own metric is not judged on accuracy, whatever the baseline has.
    switched = Reference(METRICS | {"mae": 0.2}, side=SideBySide(
        False, paired=PairedOutcome(400, 0, 0), accepted_accuracy=0.5, accepted_score=0.2))
    assert metrics_of(switched, custom(score=0.2)) == [
        "mae", "size_bytes", "gzip_bytes", "sparsity"]


# -- against the accepted file: outputs ---------------------------------------------------

SAME_NOTE = ("a conversion without fine-tuning gives the same file on any machine for the "
             "same inputs and versions")


def fidelity(side_, **reference):
    verdict = rules.check_baseline(row(), Reference(METRICS, side=side_, **reference), TOL)
    return [r for r in verdict.rows if "accepted" in r.metric and "time" not in r.metric]


def test_outputs_against_the_accepted_file():
    assert fidelity(SideBySide(False, agreement=0.98, max_output_diff=0.004)) == [
        Row("agreement with accepted", 0.98, 0.97, ">= limit", "pass",
            "top-1 on the test split; max output difference 0.004 of the range",
            headroom=pytest.approx(1 / 3)),
        Row("output difference vs accepted", 0.004, 0.01, "<= limit", "pass", SAME_NOTE,
            headroom=pytest.approx(0.6)),
    ]
    worse = fidelity(SideBySide(False, agreement=0.9, max_output_diff=0.02))
    assert [(r.status, r.headroom) for r in worse] == [
        ("regression", pytest.approx(1 - 0.1 / 0.03)), ("regression", pytest.approx(-1.0))]


def test_outputs_at_the_limits_pass_within_the_float_slack():
    at = fidelity(SideBySide(False, agreement=TOL.fidelity_agreement - rules.EPSILON,
                             max_output_diff=TOL.fidelity_output + rules.EPSILON))
    assert [r.status for r in at] == ["pass", "pass"]


def test_outputs_without_a_difference_figure_and_for_fine_tunes():
    rows = fidelity(SideBySide(False, agreement=1.0), finetuned=True)
    assert rows == [Row("agreement with accepted", 1.0, 0.97, ">= limit", "pass",
                        "top-1 on the test split; max output difference 0 of the range",
                        headroom=1.0)]


def test_identical_files_or_no_outputs_need_no_output_comparison():
    assert fidelity(SideBySide(True, agreement=0.5, max_output_diff=0.5)) == []
    assert fidelity(SideBySide(False, max_output_diff=0.5)) == []


def test_outputs_of_a_changed_model_are_shown_not_judged():
    changed = fidelity(SideBySide(False, agreement=0.5, max_output_diff=0.5),
                       changed_inputs=("the model", "the data"))
    assert changed == [
        Row("agreement with accepted", 0.5, 0.97, ">= limit", "info",
            "not judged: the model, the data changed since the baseline"),
        Row("output difference vs accepted", 0.5, 0.01, "<= limit", "info",
            "not judged: the model, the data changed since the baseline"),
    ]
    unknown = fidelity(SideBySide(False, agreement=0.5, max_output_diff=0.5),
                       inputs_recorded=False)
    why = ("not judged: the baseline records no input digests, so a changed model cannot be "
           "told apart")
    assert unknown == [
        Row("agreement with accepted", 0.5, 0.97, ">= limit", "info", why, missing=True),
        Row("output difference vs accepted", 0.5, 0.01, "<= limit", "info", why, missing=True),
    ]


# -- against the accepted file: bytes -----------------------------------------------------

def identity(recorded=SHA_OLD, measured=SHA_NEW, cached=False, **reference):
    metrics = METRICS | ({"tflite_sha256": recorded} if recorded else {})
    verdict = rules.check_baseline(row(tflite_sha256=measured, cached=cached),
                                  Reference(metrics, **reference), TOL, hint="HINT")
    return metric_row("tflite_sha256", verdict.rows)


def test_identity_row_for_each_reason_the_bytes_may_differ():
    new, old = SHA_NEW[:12], SHA_OLD[:12]
    assert identity(None) == Row("tflite_sha256", new, None, "identical", "regression",
                                 "no baseline for tflite_sha256; create it with: HINT",
                                 missing=True)
    assert identity(SHA_NEW) == Row("tflite_sha256", new, new, "identical", "pass",
                                    "converted in this run")
    assert identity(SHA_NEW, cached=True).note == \
        "from the result cache, not converted in this run"
    assert identity(changed_inputs=("the model", "the recipe")) == Row(
        "tflite_sha256", new, old, "identical", "info",
        "the model, the recipe changed since the baseline")
    assert identity(inputs_recorded=False) == Row(
        "tflite_sha256", new, old, "identical", "info",
        "the baseline records no input digests, so a changed model cannot be told from "
        "nondeterminism; record them with: HINT", missing=True)
    builds = ("tensorflow 2.20.0 (now 2.21.0)", "python 3.11.6 (now 3.11.7)")
    assert identity(build_changes=builds) == Row(
        "tflite_sha256", new, old, "identical", "info",
        "bytes are compared on the recording build only; here tensorflow 2.20.0 (now 2.21.0); "
        "python 3.11.6 (now 3.11.7)")
    assert identity(build_changes=builds, side=SideBySide(False)).note.endswith(
        "python 3.11.6 (now 3.11.7): outputs compared side by side instead")
    assert identity(nondeterministic="two files in two clean environments") == Row(
        "tflite_sha256", new, old, "identical", "info",
        "declared not byte-reproducible: two files in two clean environments")
    assert identity() == Row(
        "tflite_sha256", new, old, "identical", "regression",
        "same model, data, recipe, versions and machine class gave a different .tflite "
        "(converted in this run)")
    assert identity(cached=True).note.endswith("(from the result cache, not converted in "
                                               "this run)")


# -- peak memory --------------------------------------------------------------------------

MEM = "peak_memory_bytes"
MEM_TOL = "+5.0 % +128 KiB"


def memory(measured, machine=None, side_=None, machine_class="avx512", **extra):
    reference = Reference(METRICS, machine if machine is not None else {}, machine_class,
                          side_)
    verdict = rules.check_baseline(row(**{MEM: measured}, **extra), reference, TOL,
                                  hint="HINT")
    return [r for r in verdict.rows if "memory" in r.metric]


def test_peak_memory_against_the_accepted_file_and_this_machine_class():
    allowed = 1_000_000 * 0.05 + 128 * 1024
    assert memory(1_100_000, {MEM: 1_000_000}, SideBySide(False, accepted_memory=1_050_000)) == [
        Row("peak memory vs accepted", 1_100_000, 1_050_000, MEM_TOL, "pass",
            "both measured in this run", headroom=pytest.approx(
                1 - 50_000 / (1_050_000 * 0.05 + 128 * 1024))),
        Row(MEM, 1_100_000, 1_000_000, MEM_TOL, "pass", "recorded for this machine class",
            headroom=pytest.approx(1 - 100_000 / allowed)),
    ]
    assert [r.status for r in memory(1_000_000 + allowed + 1, {MEM: 1_000_000})] == [
        "regression"]


def test_peak_memory_without_a_record_for_this_class_says_how_to_add_it():
    assert memory(1_000_000) == [Row(
        MEM, 1_000_000, None, MEM_TOL, "skipped",
        "no record for machine class avx512: a runtime that needs more memory would go unseen "
        "here; record it with: HINT", missing=True)]
    assert memory(1_000_000, machine_class="")[0].note.startswith(
        "no record for machine class of this machine: ")


def test_peak_memory_not_measured_fails_with_the_reason():
    assert memory(None, {MEM: 1_000_000}) == [
        Row(MEM, None, 1_000_000, MEM_TOL, "fail", "not measured")]
    assert memory(None, {MEM: 1}, memory_error="timed out")[0].note == "timed out"


def test_identical_files_are_not_measured_against_each_other():
    same = memory(1_000_000, {MEM: 1_000_000}, SideBySide(True, accepted_memory=5))
    assert [r.metric for r in same] == [MEM]


def test_recorded_memory_from_a_plain_dict_counts_as_this_machines():
    verdict = rules.check_baseline(row(**{MEM: 2_000_000}), METRICS | {MEM: 1_000_000}, TOL)
    assert metric_row(MEM, verdict.rows).status == "regression"


# -- latency ------------------------------------------------------------------------------

def pairs(*candidate):
    return LatencyPairs((1.0,) * len(candidate), candidate)


# Nine pairs, every recipe/float ratio below 1: median 0.54, 95 % interval 0.51-0.57
# (order statistics 2 and 8 of 9), exact one-sided sign test p = 0.5 ** 9 = 1/512.
FAST = pairs(0.50, 0.51, 0.52, 0.53, 0.54, 0.55, 0.56, 0.57, 0.58)
CI = "95% CI 0.510-0.570, n=9"


NO_PROMISE = Promise()


def latency(p=FAST, promise=NO_PROMISE, base=None, tol=TOL, hint=UPDATE_MISSING,
            interval=None, **reference):
    return check_latency("m", "ptq_int8", p, promise,
                               LatencyReference(base, interval, **reference), tol, hint)


def test_no_model_to_time():
    assert latency(None) == Verdict("m", "ptq_int8", "latency", (
        Row("converted", False, True, "-", "fail", "no model to time"),))


def test_faster_than_float_is_a_significance_test_at_the_tolerance_alpha():
    verdict = latency(promise=Promise(faster_than_float=True), base=0.54)
    assert verdict.rows[0] == Row("faster than float", pytest.approx(0.54), 1.0, "p < 0.01",
                                  "pass", f"p=0.002, {CI}")
    assert verdict.notes == ("float 1.0000 ms, ptq_int8 0.5400 ms per inference",)
    strict = latency(promise=Promise(faster_than_float=True), base=0.54,
                     tol=Tolerances(alpha=0.001))
    assert strict.rows[0].status == "fail" and strict.rows[0].tolerance == "p < 0.001"


SLOWER = pairs(1.26, 1.27, 1.28, 1.29, 1.30, 1.31, 1.32, 1.33, 1.34)
QUICKER = pairs(0.76, 0.77, 0.78, 0.79, 0.80, 0.81, 0.82, 0.83, 0.84)


def test_time_against_the_accepted_file():
    slower = latency(side=SLOWER, base=0.54).rows[0]
    assert slower == Row("time vs accepted", pytest.approx(1.30), 1.0, "<= 1.15, p < 0.01",
                         "regression", "p=0.002, 95% CI 1.270-1.330, both timed in this run",
                         headroom=pytest.approx(1 - math.log(1.3) / math.log(1.15)))
    quicker = latency(side=QUICKER, base=0.54).rows[0]
    assert (quicker.status, quicker.note) == (
        "improved", "p=0.002, 95% CI 0.770-0.830, both timed in this run")
    # Not significant at alpha 0.001 with nine pairs: neither way.
    strict = Tolerances(alpha=0.001)
    assert latency(side=SLOWER, base=0.54, tol=strict).rows[0].status == "pass"
    assert latency(side=QUICKER, base=0.54, tol=strict).rows[0].status == "pass"


def test_time_against_the_accepted_file_when_it_cannot_be_timed():
    # (The identical file's row is pinned through the session, which decides identity.)
    absent = latency(side_note="accepted artifact r.tflite absent")
    assert absent.rows[0] == Row("time vs accepted", None, None, "-", "skipped",
                                 "accepted artifact r.tflite absent")
    assert [r.metric for r in latency().rows] == ["latency_ratio"]


def test_latency_ratio_without_a_record_or_from_another_class():
    assert latency(machine_class="avx512", hint="HINT").rows == (Row(
        "latency_ratio", pytest.approx(0.54), None, "-", "skipped",
        "no latency record for machine class avx512: a slower runtime would go unseen here; "
        "record it with: HINT", missing=True),)
    assert "machine class this machine:" in latency().rows[0].note


def test_latency_ratio_against_this_machine_class_record():
    # Recorded 0.5 with interval 0.48-0.52: a regression needs the ratio significantly
    # above 0.52 * 1.15 = 0.598, an improvement below 0.48 / 1.15 = 0.417.
    verdict = latency(base=0.5, interval=(0.48, 0.52))
    assert verdict == Verdict("m", "ptq_int8", "latency", (
        Row("latency_ratio", pytest.approx(0.54), 0.5, "<= 0.598, p < 0.01", "pass",
            f"p=1, {CI}",
            headroom=pytest.approx(1 - math.log(0.54 / 0.5) / math.log(0.598 / 0.5))),),
        ("float 1.0000 ms, ptq_int8 0.5400 ms per inference",))
    slow = latency(pairs(0.66, 0.67, 0.68, 0.69, 0.70, 0.71, 0.72, 0.73, 0.74), base=0.5,
                   interval=(0.48, 0.52)).rows[0]
    assert (slow.status, slow.note) == ("regression", "p=0.002, 95% CI 0.670-0.730, n=9")
    fast = latency(pairs(0.30, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38), base=0.5,
                   interval=(0.48, 0.52)).rows[0]
    assert (fast.status, fast.note) == ("improved", "p=0.002, 95% CI 0.310-0.370, n=9")
    # Without a recorded interval the record itself is the edge: 0.5 * 1.15 = 0.575.
    assert latency(base=0.5).rows[0].tolerance == "<= 0.575, p < 0.01"
    # Not significant at alpha 0.001 with nine pairs.
    assert latency(pairs(0.30, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38), base=0.5,
                   tol=Tolerances(alpha=0.001)).rows[0].status == "pass"


def test_the_default_hint_is_the_update_flag():
    sha = rules.check_baseline(
        row(tflite_sha256=SHA_NEW), METRICS, TOL)
    assert metric_row("tflite_sha256", sha.rows).note == \
        "no baseline for tflite_sha256; create it with: --compressgate-update=missing"
    assert latency().rows[0].note.endswith("record it with: --compressgate-update=missing")


# -- the typed record a check becomes -----------------------------------------------------

def test_a_check_record_carries_each_field_the_reports_read():
    verdict = Verdict("m", "ptq_int8", "baseline", (
        Row("accuracy", 0.9, 0.97, "0.5 pts", "regression", "dropped", headroom=-0.123456),
        Row("size_bytes", 900, 1000, "1 %", "improved", headroom=1.5),
        Row("latency_ratio", None, None, "-", "skipped", "no record"),
        Row("sparsity", 0.0, 0.0, "0.01", "pass"),
    ))
    update = Update("b/m/ptq_int8.json", "updated", [("accuracy", "0.97", "0.9", "-7.22 %")])
    record = CheckRecord.of(verdict, message="table", refused="why", update=update,
                            row={"accuracy": 0.9})
    assert record == CheckRecord(
        "m", "ptq_int8", "baseline", failed=True, message="table", stale=["size_bytes"],
        regressions=["accuracy"],
        reasons=["accuracy 0.97 -> 0.9 (0.5 pts): dropped",
                 "refused to record the baseline: why"],
        skipped=["latency_ratio: no record"],
        headroom={"accuracy": -0.1235, "size_bytes": 1.5}, update=update,
        row={"accuracy": 0.9})
    passing = CheckRecord.of(verdict.with_rows(verdict.rows[3:]), message="")
    assert (passing.failed, passing.reasons, passing.update) == (False, [], None)
    refused = CheckRecord.of(verdict.with_rows(verdict.rows[3:]), message="", refused="x")
    assert (refused.failed, refused.reasons) == (True, ["refused to record the baseline: x"])


def test_a_check_that_raised_is_a_failed_record_with_its_message():
    assert CheckRecord.error("m", "ptq_int8", "conversion", "boom") == CheckRecord(
        "m", "ptq_int8", "conversion", failed=True, message="boom")
    record = CheckRecord.error("m", "ptq_int8", "conversion", "boom")
    assert (record.model, record.recipe, record.check, record.message) == (
        "m", "ptq_int8", "conversion", "boom")
