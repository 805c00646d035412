"""The targets check row by row: every row's metric, figures, limit, status and note, so
that a changed word, limit or branch of ``targets_rules.check_targets`` fails a test (the mutants
the verdict-level tests of test_target_rules.py left alive). No TensorFlow."""

from dataclasses import replace

import pytest

from compressgate.gate import targets as targets_rules
from compressgate.gate.records import Row, Status
from compressgate.gate.rules import EPSILON
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

ARENA = "tflm_arena_bytes"
ROW = {"model": "m", "recipe": "r", "converted": True, "targets": ["tflm"],
       "kernel_agreement": 0.995, "kernel_max_quanta": 3, "tflm_loads": True,
       "tflm_error": None, "tflm_version": "v2", "tflm_max_quanta": 1,
       "tflm_ref_agreement": 0.99, "tflm_max_diff": 0.0, "tflm_accuracy": 0.97,
       "litert_rows_accuracy": 0.96, "target_rows": 100, ARENA: 10_100}
PROMISE = Promise(max_arena_kib=10.0, min_kernel_agreement=0.995)


def rows(row=None, promise=PROMISE, accepted=None, tol=None):
    tol = Tolerances() if tol is None else tol
    verdict = targets_rules.check_targets(ResultRow.from_dict({**ROW, **(row or {})}), promise,
                                  {ARENA: 10_000, "tflm_version": "v2"}
                                  if accepted is None else accepted, tol, hint="make gate")
    assert (verdict.model, verdict.recipe, verdict.check) == ("m", "r", "targets")
    return [(r.metric, r.measured, r.expected, r.tolerance, r.status, r.note, r.missing)
            for r in verdict.rows], verdict


def test_every_row_of_a_file_that_runs_everywhere():
    got, verdict = rows()
    assert got == [
        ("kernel agreement", 0.995, 0.995, ">= limit", Status.PASS,
         "top-1, XNNPACK vs reference kernels; max difference 3 quanta", False),
        ("runs on TFLM", True, True, "-", Status.PASS, "tflite-micro v2", False),
        ("TFLM vs reference kernels (quanta)", 1, 1, "<= limit", Status.PASS,
         "largest output difference on the first 100 test rows; top-1 agreement 0.99",
         False),
        ("TFLM accuracy", 0.97, 0.96, "-", Status.INFO,
         "on the first 100 test rows, against LiteRT with XNNPACK on the same rows", False),
        ("arena KiB", 9.86, 10.0, "<= budget", Status.PASS,
         "promise.max_arena_kib", False),
        (ARENA, 10_100, 10_000, "+1.0 %", Status.PASS, "accepted", False),
    ]
    assert not verdict.failed
    assert verdict.rows[-1].headroom == pytest.approx(0.0)  # exactly at the +1 % limit


def test_one_byte_over_the_allowed_growth_and_over_the_budget_fail():
    got, verdict = rows({ARENA: 10_241})
    assert got[-2][:5] == ("arena KiB", 10.0, 10.0, "<= budget", Status.PASS)
    assert got[-1][4] == Status.REGRESSION
    got, verdict = rows({ARENA: 10_250})
    assert got[-2][:5] == ("arena KiB", 10.01, 10.0, "<= budget", Status.FAIL)
    assert verdict.failed


def test_kernel_agreement_without_a_promise_is_information_only():
    got, verdict = rows({"kernel_agreement": 0.5, "kernel_max_quanta": None},
                        promise=Promise())
    assert got[0] == ("kernel agreement", 0.5, None, "-", Status.INFO,
                      "top-1, XNNPACK vs reference kernels; max difference - quanta "
                      "(no promise)", False)
    assert not any(r[0] == "arena KiB" for r in got) and not verdict.failed


@pytest.mark.parametrize(("agreement", "status"), [
    (0.995, Status.PASS), (0.995 - 1e-12, Status.PASS), (0.995 - EPSILON, Status.PASS),
    (0.994, Status.FAIL), (None, Status.FAIL)])
def test_kernel_agreement_at_its_promise(agreement, status):
    assert rows({"kernel_agreement": agreement})[0][0][4] == status


def test_tflite_micro_missing_a_load_failure_and_no_arena_are_one_row_each():
    assert rows({"tflm_loads": None, "tflm_error": "not run: no tflite-micro"})[0][1:] == [
        ("runs on TFLM", None, True, "-", Status.SKIPPED, "not run: no tflite-micro", False)]
    assert rows({"tflm_loads": None, "tflm_error": None})[0][1][5] == "not measured"
    assert rows({"tflm_loads": False, "tflm_error": "op TOPK_V2 is not in TFLM's op "
                 "resolver"})[0][1:] == [
        ("runs on TFLM", False, True, "-", Status.FAIL,
         "op TOPK_V2 is not in TFLM's op resolver", False)]
    # A tflite-micro that does not say its version.
    assert rows({"tflm_version": None})[0][1][5] == "tflite-micro ?"
    got, verdict = rows({ARENA: None})
    assert got[-1] == (ARENA, None, None, "-", Status.FAIL,
                       "TFLM printed no arena allocation total", False)
    assert verdict.failed


def test_quanta_beyond_the_default_and_float_outputs():
    got, _ = rows({"tflm_max_quanta": 2}, promise=Promise())
    assert got[2][:5] == ("TFLM vs reference kernels (quanta)", 2, 1, "<= limit",
                          Status.FAIL)
    got, _ = rows({"tflm_max_quanta": 0}, promise=Promise(max_tflm_quanta=0))
    assert got[2][:5] == ("TFLM vs reference kernels (quanta)", 0, 0, "<= limit",
                          Status.PASS)
    got, _ = rows({"tflm_max_quanta": None, "tflm_max_diff": 0.25, "tflm_accuracy": None})
    assert got[2] == ("TFLM vs reference kernels", 0.25, None, "-", Status.INFO,
                      "float outputs: largest difference as a fraction of the range; "
                      "top-1 agreement 0.99", False)
    assert [r[0] for r in got].count("TFLM accuracy") == 0


def test_the_arena_without_an_accepted_figure_or_from_another_tflm():
    got, _ = rows(accepted={})
    assert got[-1] == (ARENA, 10_100, None, "+1.0 %", Status.SKIPPED,
                       "not judged: no accepted arena figure; record with: make gate", True)
    got, _ = rows(accepted={ARENA: 10_000, "tflm_version": "v1"})
    assert got[-1][5] == "accepted with tflite-micro v1 (now v2)"
    got, _ = rows(accepted={ARENA: 10_000})
    assert got[-1][5] == "accepted"
    got, _ = rows(tol=replace(Tolerances(), arena_pct=5.0), row={ARENA: 10_500})
    assert got[-1][3:5] == ("+5.0 %", Status.PASS)


def test_a_row_without_tflm_not_converted_or_unmeasured():
    got, _ = rows({"targets": []})
    assert [r[0] for r in got] == ["kernel agreement"]
    verdict = targets_rules.check_targets(
        ResultRow.from_dict({**ROW, "converted": False, "error": "boom"}), PROMISE, {},
                                  Tolerances())
    assert [(r.metric, r.status, r.note) for r in verdict.rows] == [
        ("converted", Status.FAIL, "boom")]
    verdict = targets_rules.check_targets(
        ResultRow.from_dict({**ROW, "targets_error": "child died"}), PROMISE, {},
                                  Tolerances())
    assert verdict.rows == (Row("target measurement", None, "measured", "-", Status.FAIL,
                                "child died"),)
