"""Every rule that decides a release, pinned at its limit: exactly at it, just inside and
just outside, in the metric's own units. No TensorFlow, no timing: hand-made rows,
side-by-side figures and latency pairs."""

import math

import numpy as np
import pytest

from compressgate.gate import rules
from compressgate.gate.latency import LatencyReference, check_latency, ratio_exceeds
from compressgate.measure.stats import LatencyPairs, PairedOutcome, SideBySide, rows_within
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise, get_recipe
from compressgate.tolerances import Tolerances

INT8 = get_recipe("ptq_int8").promise
TOL = Tolerances()


def row(**overrides):
    return ResultRow.from_dict({
            "model": "m", "recipe": "ptq_int8", "converted": True, "error": None,
            "accuracy": 0.99, "float_accuracy": 0.99, "accuracy_drop_pts": 0.0,
            "size_bytes": 1000, "size_ratio": 4.0, "gzip_bytes": 900, "gzip_ratio": 4.0,
            "sparsity": 0.5, "input_dtype": "int8", "output_dtype": "int8", "float_ops": [],
            "test_rows": 400, "peak_memory_bytes": 1_000_000} | overrides)


METRICS = {"accuracy": 0.99, "size_bytes": 1000, "gzip_bytes": 900, "sparsity": 0.5}


def status(verdict, metric):
    return next(r.status for r in verdict.rows if r.metric == metric)


def baseline(row_overrides=None, tol=TOL, **reference):
    ref = rules.Reference(**({"metrics": METRICS} | reference))
    return rules.check_baseline(row(**(row_overrides or {})), ref, tol)


# -- absolute promises -----------------------------------------------------------------

@pytest.mark.parametrize(("drop", "verdict"), [(1.9999, "pass"), (2.0, "fail"), (2.0001, "fail")])
def test_accuracy_drop_against_float_must_stay_below_the_promise(drop, verdict):
    assert status(rules.check_accuracy(row(accuracy_drop_pts=drop), INT8),
                  "accuracy drop (pts)") == verdict


@pytest.mark.parametrize(("ratio", "verdict"), [(3.4999, "fail"), (3.5, "pass"), (3.5001, "pass")])
def test_size_ratio_promise_is_inclusive(ratio, verdict):
    assert INT8.min_size_ratio == 3.5
    assert status(rules.check_size(row(size_ratio=ratio), INT8), "size_ratio") == verdict


@pytest.mark.parametrize(("ratio", "verdict"), [(7.999, "fail"), (8.0, "pass")])
def test_gzip_ratio_promise_is_inclusive(ratio, verdict):
    promise = Promise(min_gzip_ratio=8.0)
    assert status(rules.check_size(row(gzip_ratio=ratio), promise), "gzip_ratio") == verdict


@pytest.mark.parametrize(("agreement", "verdict"), [(0.9899, "fail"), (0.99, "pass")])
def test_float_conversion_agrees_with_keras_at_99_percent(agreement, verdict):
    checked = rules.check_accuracy(row(recipe="float", keras_agreement=agreement), INT8)
    assert status(checked, "top-1 agreement with Keras") == verdict


# -- against the recorded figures (no accepted file at hand) ------------------------------

def test_recorded_accuracy_exactly_half_a_point_lower_passes():
    # 0.99 - 0.985 = 0.0050000000000000044 in floats: counted in rows it is exactly 2 of 400.
    assert status(baseline({"accuracy": 0.985}), "accuracy") == "pass"
    assert status(baseline({"accuracy": 0.9825}), "accuracy") == "regression"
    assert status(baseline({"accuracy": 0.995}), "accuracy") == "pass"
    assert status(baseline({"accuracy": 0.9975}), "accuracy") == "improved"


@pytest.mark.parametrize(("points", "rows", "allowed"), [
    (0.5, 400, 2), (0.5, 171, 0), (0.5, 800, 4), (2.0, 400, 8), (0.25, 400, 1)])
def test_tolerance_in_whole_rows(points, rows, allowed):
    assert rows_within(points, rows) == allowed


@pytest.mark.parametrize(("metric", "limit", "outside"), [
    ("size_bytes", 1010, 1010.001), ("gzip_bytes", 909, 909.001)])
def test_size_and_gzip_may_grow_by_exactly_one_percent(metric, limit, outside):
    assert status(baseline({metric: limit}), metric) == "pass"
    assert status(baseline({metric: outside}), metric) == "regression"
    assert status(baseline({metric: METRICS[metric] * 0.99}), metric) == "pass"
    assert status(baseline({metric: METRICS[metric] * 0.98}), metric) == "improved"


def test_sparsity_may_fall_by_exactly_its_tolerance():
    assert status(baseline({"sparsity": 0.49}), "sparsity") == "pass"
    assert status(baseline({"sparsity": 0.4899}), "sparsity") == "regression"
    assert status(baseline({"sparsity": 0.511}), "sparsity") == "improved"


def test_memory_may_grow_by_its_percentage_plus_its_floor_against_this_class_record():
    allowed = 1_000_000 * 0.05 + 128 * 1024
    machine = {"peak_memory_bytes": 1_000_000}
    assert status(baseline({"peak_memory_bytes": 1_000_000 + allowed}, machine=machine),
                  "peak_memory_bytes") == "pass"
    assert status(baseline({"peak_memory_bytes": 1_000_001 + allowed}, machine=machine),
                  "peak_memory_bytes") == "regression"


def test_memory_without_a_record_for_this_class_is_skipped_not_passed():
    verdict = baseline(machine_class="x86_64 avx2")
    assert status(verdict, "peak_memory_bytes") == "skipped"
    assert not verdict.failed and len(verdict.skipped) == 1


# -- side by side with the accepted file ------------------------------------------------

def side(**fields):
    return SideBySide(**({"identical": False, "accepted_accuracy": 0.99,
                               "agreement": 1.0, "max_output_diff": 0.0} | fields))


LOOSE = Tolerances(accuracy_pts=2.0)  # 8 of 400 rows: room for significance


@pytest.mark.parametrize(("lost", "gained", "verdict"), [
    (8, 0, "pass"),          # exactly the tolerance in rows
    (9, 0, "regression"),    # one row more, p = 0.002
    (12, 3, "regression"),   # 9 net, p = 0.018 < 0.05
    (20, 11, "pass"),        # 9 net, but p = 0.075: noise crossing the limit
    (0, 9, "improved"),
])
def test_paired_accuracy_needs_more_rows_than_allowed_and_significance(lost, gained, verdict):
    paired = PairedOutcome(400, lost, gained)
    checked = baseline({"accuracy": 0.99 - (lost - gained) / 400}, tol=LOOSE,
                       side=side(paired=paired))
    assert status(checked, "accuracy") == verdict


def test_paired_significance_limit_is_strict():
    paired = PairedOutcome(400, 9, 0)  # p = 0.5 ** 9
    p = paired.p_worse()
    assert p == pytest.approx(0.5 ** 9)
    at = Tolerances(accuracy_pts=2.0, accuracy_alpha=p)
    above = Tolerances(accuracy_pts=2.0, accuracy_alpha=p * 1.0001)
    assert status(baseline(tol=at, side=side(paired=paired)), "accuracy") == "pass"
    assert status(baseline(tol=above, side=side(paired=paired)), "accuracy") == "regression"


def test_two_of_400_rows_flipping_on_another_machine_is_not_a_regression():
    noise = side(paired=PairedOutcome(400, 3, 1), accepted_accuracy=0.99)
    assert status(baseline({"accuracy": 0.985}, side=noise), "accuracy") == "pass"


@pytest.mark.parametrize(("lost_rows", "verdict"), [(1, "pass"), (2, "pass"), (3, "regression")])
def test_the_accepted_file_here_against_the_figure_it_was_accepted_with(lost_rows, verdict):
    here = side(paired=PairedOutcome(400, 0, 0), accepted_accuracy=0.99 - lost_rows / 400)
    assert status(baseline({"accuracy": 0.99 - lost_rows / 400}, side=here),
                  "accuracy (recorded)") == verdict


def test_one_row_of_slack_for_the_accepted_file_on_a_small_test_split():
    here = side(paired=PairedOutcome(171, 0, 0), accepted_accuracy=0.99 - 1 / 171)
    checked = baseline({"accuracy": 0.99 - 1 / 171, "test_rows": 171}, side=here)
    assert status(checked, "accuracy (recorded)") == "pass"


@pytest.mark.parametrize(("agreement", "verdict"), [(0.97, "pass"), (0.9699, "regression")])
def test_top1_agreement_with_the_accepted_file(agreement, verdict):
    checked = baseline(side=side(agreement=agreement, paired=PairedOutcome(400, 0, 0)))
    assert status(checked, "agreement with accepted") == verdict


@pytest.mark.parametrize(("diff", "finetuned", "verdict"), [
    (0.01, False, "pass"), (0.0101, False, "regression"), (0.5, True, None)])
def test_output_difference_is_judged_for_recipes_without_fine_tuning(diff, finetuned, verdict):
    checked = baseline(side=side(max_output_diff=diff, paired=PairedOutcome(400, 0, 0)),
                       finetuned=finetuned)
    rows = {r.metric: r.status for r in checked.rows}
    assert rows.get("output difference vs accepted") == verdict


def test_outputs_of_a_changed_model_are_shown_not_judged():
    checked = baseline(side=side(agreement=0.5, max_output_diff=0.9,
                                 paired=PairedOutcome(400, 0, 0)),
                       changed_inputs=("the model",))
    assert status(checked, "agreement with accepted") == "info"
    assert status(checked, "output difference vs accepted") == "info"
    assert not checked.failed


def test_memory_side_by_side_limit():
    allowed = 1_000_000 * 0.05 + 128 * 1024
    at = side(accepted_memory=1_000_000, paired=PairedOutcome(400, 0, 0))
    assert status(baseline({"peak_memory_bytes": 1_000_000 + allowed}, side=at),
                  "peak memory vs accepted") == "pass"
    assert status(baseline({"peak_memory_bytes": 1_000_001 + allowed}, side=at),
                  "peak memory vs accepted") == "regression"


@pytest.mark.parametrize(("build", "verdict"), [((), "regression"),
                                                (("machine class a (now b)",), "info")])
def test_bytes_are_compared_on_the_recording_build_only(build, verdict):
    checked = baseline({"tflite_sha256": "b" * 64},
                       metrics=METRICS | {"tflite_sha256": "a" * 64}, build_changes=build)
    assert status(checked, "tflite_sha256") == verdict


# -- latency ------------------------------------------------------------------------------

def pairs(ratios, n=42, reference=1.0):
    ratios = np.broadcast_to(np.asarray(ratios, dtype=float), (n,))
    ref = np.full(n, reference)
    return LatencyPairs(tuple(ref), tuple(ref * ratios))


def jitter(center, spread, n=42, seed=0):
    """Per-pair ratios log-uniformly spread by +-``spread`` around ``center``."""
    rng = np.random.default_rng(seed)
    return center * np.exp(rng.uniform(-spread, spread, n))


def latency(p, base=1.0, interval=None, **kwargs):
    verdict = check_latency("m", "r", p, INT8, LatencyReference(base, interval, **kwargs),
                                 TOL)
    return status(verdict, "latency_ratio")


def test_a_small_real_shift_beyond_the_limit_is_significant():
    assert latency(pairs(jitter(1.16, 0.002))) == "regression"
    assert latency(pairs(jitter(1.14, 0.002))) == "pass"


def test_noise_crossing_the_limit_without_significance_passes():
    noisy = pairs(jitter(1.16, 0.5, seed=3))
    assert noisy.ratio > 1.15  # the median is beyond the limit ...
    assert latency(noisy) == "pass"  # ... but the pairs do not show it significantly


def test_the_limit_counts_from_the_edge_of_the_recorded_interval():
    p = pairs(jitter(1.22, 0.002))
    assert latency(p, interval=(0.9, 1.1)) == "pass"      # 1.1 * 1.15 = 1.265
    assert latency(p) == "regression"                     # 1.0 * 1.15 = 1.15


def test_latency_significance_limit_is_strict():
    p = pairs(jitter(1.3, 0.01, n=12), n=12)
    _, pvalue = ratio_exceeds(p, 1.15, TOL.alpha)
    at = Tolerances(alpha=pvalue)
    above = Tolerances(alpha=pvalue * 1.0001)
    check = check_latency
    recorded = LatencyReference(1.0)
    assert status(check("m", "r", p, INT8, recorded, at), "latency_ratio") == "pass"
    assert status(check("m", "r", p, INT8, recorded, above), "latency_ratio") == "regression"


def test_the_default_alpha_and_tolerance_are_pinned():
    assert (TOL.alpha, TOL.latency_pct, TOL.accuracy_alpha) == (0.01, 15.0, 0.05)
    assert (TOL.accuracy_pts, TOL.size_pct, TOL.gzip_pct, TOL.sparsity) == (0.5, 1.0, 1.0, 0.01)
    assert (TOL.memory_pct, TOL.memory_kib) == (5.0, 128.0)
    assert (TOL.fidelity_agreement, TOL.fidelity_output) == (0.97, 0.01)


def test_faster_latency_beyond_tolerance_marks_the_record_stale():
    assert latency(pairs(jitter(0.85, 0.002))) == "improved"
    assert latency(pairs(jitter(0.88, 0.002))) == "pass"


def test_no_record_for_this_machine_class_is_skipped_with_the_way_to_add_it():
    verdict = check_latency("m", "r", pairs(1.0), INT8,
                                 LatencyReference(machine_class="x86_64 avx2"), TOL,
                                 hint="tox -e gate -- --x")
    row_ = next(r for r in verdict.rows if r.metric == "latency_ratio")
    assert row_.status == "skipped" and "x86_64 avx2" in row_.note
    assert row_.note.endswith("record it with: tox -e gate -- --x")


@pytest.mark.parametrize(("center", "verdict"), [(1.16, "regression"), (1.14, "pass"),
                                                 (1 / 1.16, "improved")])
def test_side_by_side_time_against_the_accepted_file(center, verdict):
    checked = check_latency("m", "r", pairs(1.0), INT8,
                                 LatencyReference(side=pairs(jitter(center, 0.002))), TOL)
    assert status(checked, "time vs accepted") == verdict
    headroom = next(r.headroom for r in checked.rows if r.metric == "time vs accepted")
    assert headroom == pytest.approx(1 - math.log(center) / math.log(1.15), abs=0.01)


def test_a_regression_timed_on_a_busy_machine_is_not_judged():
    slow = jitter(1.3, 0.002)
    quiet = LatencyPairs(*(pairs(slow).reference_ms, pairs(slow).candidate_ms),
                         others_running=0.4)
    busy = LatencyPairs(quiet.reference_ms, quiet.candidate_ms, others_running=0.5)
    assert latency(quiet) == "regression"
    verdict = check_latency("m", "r", busy, INT8, LatencyReference(1.0), TOL)
    row_ = next(r for r in verdict.rows if r.metric == "latency_ratio")
    assert row_.status == "skipped" and not verdict.failed
    assert "machine busy while timing (0.5 other runnable tasks on average)" in row_.note
    # ... unless it lies beyond twice the limit: no contention explains that.
    far = jitter(2.31, 0.002)
    busy_far = LatencyPairs(pairs(far).reference_ms, pairs(far).candidate_ms,
                            others_running=2.0)
    assert latency(busy_far) == "regression"
    near = jitter(2.29, 0.002)
    assert latency(LatencyPairs(pairs(near).reference_ms, pairs(near).candidate_ms,
                                others_running=2.0)) == "skipped"
    # A pass on a busy machine stays a pass; only a would-be failure is withheld.
    assert latency(LatencyPairs(quiet.reference_ms, quiet.reference_ms,
                                others_running=3.0)) == "pass"
    side = check_latency("m", "r", pairs(1.0), INT8, LatencyReference(side=busy), TOL)
    assert status(side, "time vs accepted") == "skipped"


@pytest.mark.parametrize(("identical", "verdict"), [(True, "pass"), (False, "skipped")])
def test_an_identical_artifact_is_said_by_a_flag_not_by_its_note(identical, verdict):
    checked = check_latency(
        "m", "r", pairs(1.0), INT8,
        LatencyReference(side_note="any wording", side_identical=identical), TOL)
    assert status(checked, "time vs accepted") == verdict


def test_a_min_runtime_promise_without_op_versions_fails():
    promise = Promise(min_runtime="2.14")
    verdict = rules.check_conversion(row(op_versions=[]), promise)
    assert status(verdict, "min runtime") == "fail"
    assert "cannot vouch" in next(r.note for r in verdict.rows if r.metric == "min runtime")


def _busy(center, others=2.0):
    p = pairs(jitter(center, 0.002))
    return LatencyPairs(p.reference_ms, p.candidate_ms, others_running=others)


def test_a_busy_regression_keeps_its_row_and_says_the_load_exactly():
    def ratio_row(p):
        return next(r for r in check_latency("m", "r", p, INT8, LatencyReference(1.0),
                                                   TOL).rows
                    if r.metric == "latency_ratio")

    rows = [ratio_row(_busy(2.31)), ratio_row(_busy(2.29)), ratio_row(_busy(2.29, None))]
    far_quiet = ratio_row(_busy(2.31, None))
    for row_ in rows:  # only status and note change with the load
        assert (row_.expected, row_.tolerance, row_.missing) == (
            1.0, "<= 1.15, p < 0.01", False)
        assert row_.headroom == pytest.approx(
            1 - math.log(row_.measured) / math.log(1.15))
    assert rows[1].measured == rows[2].measured
    assert rows[0].status == "regression" and rows[0].note == (
        f"{far_quiet.note}; machine busy while timing (2.0 other runnable tasks "
        "on average), and still beyond 2x the limit")
    assert rows[1].status == "skipped" and rows[1].note == (
        "machine busy while timing (2.0 other runnable tasks on average): would be a "
        f"regression ({rows[2].note}), within what contention moves (2x the limit); "
        "not judged, re-run on a quiet machine")
    assert rows[2].status == "regression"


def test_the_busy_limit_is_twice_the_limit_in_the_side_by_side_time_too():
    def side_status(center):
        checked = check_latency("m", "r", pairs(1.0), INT8,
                                      LatencyReference(side=_busy(center)), TOL)
        return status(checked, "time vs accepted")

    assert (side_status(2.31), side_status(2.29)) == ("regression", "skipped")


def test_the_runtime_row_without_op_versions_is_exact():
    verdict = rules.check_conversion(row(op_versions=None), Promise(min_runtime="2.14"))
    assert next(r for r in verdict.rows if r.metric == "min runtime") == rules.Row(
        "min runtime", None, "<= 2.14", "-", "fail",
        "no op versions recorded for this file: cannot vouch for a runtime")


def test_the_busy_limit_uses_the_configured_alpha():
    # 26 of 42 pairs beyond twice the limit: p = 0.08, significant at 0.1, not at 0.01.
    ratios = np.r_[np.full(26, 2.5), np.full(16, 2.2)]
    p = pairs(ratios)
    busy = LatencyPairs(p.reference_ms, p.candidate_ms, others_running=1.0)

    def verdict(alpha):
        checked = check_latency("m", "r", busy, INT8, LatencyReference(1.0),
                                      Tolerances(alpha=alpha))
        return status(checked, "latency_ratio")

    assert (verdict(0.1), verdict(0.01)) == ("regression", "skipped")
