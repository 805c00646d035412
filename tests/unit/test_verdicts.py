"""Verdict rules on hand-made rows: absolute checks, one-sided baseline comparison,
latency significance. No TensorFlow, no timing."""

import numpy as np
import pytest

from compressgate.gate import baselines, rules
from compressgate.gate.latency import LatencyReference, check_latency
from compressgate.measure.stats import LatencyPairs
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise, get_recipe
from compressgate.tolerances import Tolerances

INT8 = get_recipe("ptq_int8").promise


def row(**overrides):
    base = {
        "model": "m", "recipe": "ptq_int8", "converted": True, "error": None,
        "accuracy": 0.97, "float_accuracy": 0.98, "accuracy_drop_pts": 1.0,
        "size_bytes": 1000, "float_size_bytes": 4000, "size_ratio": 4.0,
        "gzip_bytes": 800, "float_gzip_bytes": 3600, "gzip_ratio": 4.5, "sparsity": 0.0,
        "input_dtype": "int8", "output_dtype": "int8", "float_ops": [],
    }
    return ResultRow.from_dict(base | overrides)


def baseline(**overrides):
    return {"accuracy": 0.97, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.0} | overrides


def statuses(verdict):
    return {r.metric: r.status for r in verdict.rows}


def test_conversion_passes_for_a_full_integer_model():
    assert not rules.check_conversion(row(), INT8).failed


def test_conversion_catches_float_io_and_float_ops():
    verdict = rules.check_conversion(row(input_dtype="float32", float_ops=["FULLY_CONNECTED"]),
                                    INT8)
    assert statuses(verdict) == {"converted": "pass", "input_dtype": "fail",
                                 "output_dtype": "pass", "float ops": "fail"}


def test_conversion_failure_carries_the_error():
    verdict = rules.check_conversion(row(converted=False, error="LSTM not supported"), INT8)
    assert verdict.failed and "LSTM not supported" in verdict.table()


@pytest.mark.parametrize(("drop", "failed"), [(1.99, False), (2.0, True), (5.0, True)])
def test_accuracy_drop_limit_is_strict(drop, failed):
    assert rules.check_accuracy(row(accuracy_drop_pts=drop), INT8).failed is failed


def test_size_promise():
    assert not rules.check_size(row(size_ratio=3.6), INT8).failed
    assert rules.check_size(row(size_ratio=1.0), INT8).failed


def test_gzip_promise():
    promise = Promise(min_gzip_ratio=8.0)
    assert rules.check_size(row(gzip_ratio=7.9), promise).failed
    assert not rules.check_size(row(gzip_ratio=8.1), promise).failed


def test_unchanged_figures_pass_the_baseline():
    verdict = rules.check_baseline(row(), baseline(), Tolerances())
    assert set(statuses(verdict).values()) == {"pass"}


@pytest.mark.parametrize(("field", "value", "metric"), [
    ("accuracy", 0.96, "accuracy"),          # 1 point lower, tolerance 0.5
    ("size_bytes", 1020, "size_bytes"),       # 2 % larger, tolerance 1 %
    ("gzip_bytes", 900, "gzip_bytes"),
    ("sparsity", 0.0, "sparsity"),
])
def test_each_metric_regresses_one_sided(field, value, metric):
    base = baseline(sparsity=0.5) if field == "sparsity" else baseline()
    verdict = rules.check_baseline(row(**{field: value}), base, Tolerances())
    assert statuses(verdict)[metric] == "regression"
    assert verdict.failed
    assert metric in verdict.table()


def test_improvement_beyond_tolerance_passes_but_is_stale():
    verdict = rules.check_baseline(row(size_bytes=900), baseline(), Tolerances())
    assert not verdict.failed
    assert [r.metric for r in verdict.stale] == ["size_bytes"]


def test_within_tolerance_is_a_pass_either_way():
    tol = Tolerances()
    assert not rules.check_baseline(row(accuracy=0.9675), baseline(), tol).failed
    assert not rules.check_baseline(row(size_bytes=1009), baseline(), tol).failed


def test_lost_conversion_is_a_regression():
    verdict = rules.check_baseline(row(converted=False, error="boom"), baseline(),
                                  Tolerances())
    assert statuses(verdict) == {"converted": "regression"}


def test_baseline_of_an_unconverted_recipe():
    stored = {"converted": False, "error": "unsupported"}
    assert not rules.check_baseline(row(converted=False), stored, Tolerances()).failed
    assert rules.check_baseline(row(), stored, Tolerances()).stale


def pairs(ratio, n=41, noise=0.01, seed=1):
    rng = np.random.default_rng(seed)
    ref = 1 + rng.uniform(0, 0.5, n)
    return LatencyPairs(tuple(ref), tuple(ref * ratio * np.exp(rng.normal(0, noise, n))))


def test_latency_regression_needs_tolerance_and_significance():
    tol = Tolerances()
    assert statuses(check_latency("m", "r", pairs(0.5), INT8, LatencyReference(0.5), tol))[
        "latency_ratio"] == "pass"
    assert statuses(check_latency("m", "r", pairs(1.0), INT8, LatencyReference(0.5), tol))[
        "latency_ratio"] == "regression"
    # 10 % worse is inside the 15 % tolerance: not a regression however significant.
    assert statuses(check_latency("m", "r", pairs(0.55), INT8, LatencyReference(0.5), tol))[
        "latency_ratio"] == "pass"
    assert statuses(check_latency("m", "r", pairs(0.3), INT8, LatencyReference(0.5), tol))[
        "latency_ratio"] == "improved"


def test_latency_noise_is_not_a_regression():
    noisy = pairs(0.6, noise=0.3, n=15)
    verdict = check_latency("m", "r", noisy, INT8, LatencyReference(0.5), Tolerances())
    assert not verdict.failed


def test_faster_than_float_requirement():
    promise = Promise(faster_than_float=True)
    assert not check_latency("m", "r", pairs(0.7), promise, LatencyReference(),
                                  Tolerances()).failed
    assert check_latency("m", "r", pairs(1.0, noise=0.05), promise,
                              LatencyReference(), Tolerances()).failed


def test_absolute_failures_block_recording():
    assert rules.absolute_failures(row(), INT8) == []
    assert rules.absolute_failures(row(accuracy_drop_pts=3.0), INT8)
    assert rules.absolute_failures(row(converted=False, accuracy_drop_pts=None), INT8)


def test_failure_table_names_metric_measured_baseline_tolerance_verdict():
    table = rules.check_baseline(row(accuracy=0.9), baseline(), Tolerances()).table()
    assert "m x ptq_int8: baseline" in table
    for word in ("metric", "measured", "baseline/limit", "tolerance", "verdict", "regression"):
        assert word in table


def test_float_reference_must_agree_with_keras():
    promise = get_recipe("float").promise
    ok = row(recipe="float", accuracy_drop_pts=0.0, keras_agreement=1.0)
    assert not rules.check_accuracy(ok, promise).failed
    unfaithful = row(recipe="float", accuracy_drop_pts=0.0, keras_agreement=0.83)
    assert statuses(rules.check_accuracy(unfaithful, promise)) == {
        "accuracy drop (pts)": "pass", "top-1 agreement with Keras": "fail"}


def mae_row(score, float_score=0.10, max_loss=0.05):
    return row(metric="mae", score=score, float_score=float_score, accuracy=None,
               accuracy_drop_pts=None, metric_loss=round(score - float_score, 6),
               higher_is_better=False, max_loss=max_loss, metric_tolerance=max_loss / 4)


@pytest.mark.parametrize(("score", "failed"), [(0.12, False), (0.149, False), (0.15, True)])
def test_custom_metric_loss_against_float_in_its_own_units(score, failed):
    verdict = rules.check_accuracy(mae_row(score), INT8)  # max_drop_pts does not apply
    assert verdict.failed is failed
    assert verdict.rows[0].metric == "mae loss"
    assert "lower is better" in verdict.rows[0].note


def test_custom_metric_baseline_is_one_sided_in_its_direction():
    figures = baselines.judged_figures(mae_row(0.12))
    assert figures == {"mae": 0.12, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.0}
    worse = rules.check_baseline(mae_row(0.12 + 0.0126), figures, Tolerances())
    better = rules.check_baseline(mae_row(0.12 - 0.0126), figures, Tolerances())
    same = rules.check_baseline(mae_row(0.12 + 0.012), figures, Tolerances())
    assert statuses(worse)["mae"] == "regression"
    assert statuses(better)["mae"] == "improved"
    assert statuses(same)["mae"] == "pass"
