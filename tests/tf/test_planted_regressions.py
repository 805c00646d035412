"""Regressions planted through recipe settings are caught by the right check.

Each planted recipe is the committed recipe with one fault; its result is judged against
the committed baseline of the healthy recipe, as a real regression would be.
"""

import pytest

from compressgate import gate

pytestmark = pytest.mark.tf
MODEL = "digits_cnn"


def planted(session, base: str, fault: str, overrides: dict):
    healthy = session.runner.recipe(MODEL, base)
    recipe = healthy.with_overrides({"name": f"{base}_{fault}", **overrides})
    stored = session._load(MODEL, base)
    assert stored is not None, f"no committed baseline for {MODEL} x {base}"
    return recipe, session.runner.row(MODEL, recipe), stored.metrics


def failed_metrics(verdict):
    return {r.metric for r in verdict.regressions}


def test_healthy_recipe_passes_every_check(session):
    row = session.runner.row(MODEL, "ptq_int8")
    promise = session.promise(MODEL, "ptq_int8")
    for verdict in (gate.check_conversion(row, promise), gate.check_accuracy(row, promise),
                    gate.check_size(row, promise),
                    gate.check_baseline(row, session._load(MODEL, "ptq_int8").metrics,
                                        session.settings.tolerances)):
        assert not verdict.failed, verdict.table()


def test_optimization_switched_off_fails_size(session):
    recipe, row, base = planted(session, "ptq_int8", "no_opt", {"optimize": False})
    assert "size_ratio" in failed_metrics(gate.check_size(row, recipe.promise))
    assert {"size_bytes", "gzip_bytes"} <= failed_metrics(
        gate.check_baseline(row, base, session.settings.tolerances))


@pytest.mark.parametrize(("fault", "scale"), [("zero_calibration", 0.0),
                                              ("scaled_calibration", 0.01)])
def test_bad_calibration_fails_accuracy(session, fault, scale):
    recipe, row, base = planted(session, "ptq_int8", fault, {"calibration_scale": scale})
    assert gate.check_accuracy(row, recipe.promise).failed, row["accuracy_drop_pts"]
    assert "accuracy" in failed_metrics(
        gate.check_baseline(row, base, session.settings.tolerances))


def test_pruning_target_zero_fails_sparsity_and_gzip(session):
    recipe, row, base = planted(session, "prune_int8", "no_sparsity",
                                {"prune": {"initial_sparsity": 0.0, "final_sparsity": 0.0}})
    assert "gzip_ratio" in failed_metrics(gate.check_size(row, recipe.promise))
    assert {"sparsity", "gzip_bytes"} <= failed_metrics(
        gate.check_baseline(row, base, session.settings.tolerances))


def test_model_invoked_twice_fails_latency(session):
    recipe, _, _ = planted(session, "ptq_int8", "slow_kernel", {"repeat_invoke": 2})
    # The healthy ratio measured in this same run stands in for the baseline, so the
    # test holds on any CPU (the committed latency baseline is per CPU).
    healthy = session.runner.latency(MODEL, "ptq_int8")
    tol, interval = session.settings.tolerances, healthy.ratio_interval()

    def judge(name, pairs):
        return gate.check_latency(MODEL, name, pairs, recipe.promise, healthy.ratio, tol,
                                  baseline_interval=interval)

    slow = judge(recipe.name, session.runner.latency(MODEL, recipe))
    assert failed_metrics(slow) == {"latency_ratio"}, slow.table()
    # The healthy recipe re-measured passes (with the gate's one confirmation).
    verdicts = [judge("ptq_int8", session.runner.latency(MODEL, "ptq_int8")) for _ in range(2)]
    assert not all(v.failed for v in verdicts), verdicts[-1].table()
