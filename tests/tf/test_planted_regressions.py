"""Regressions planted through recipe settings are caught by the right check, on any
machine class.

Each planted recipe is the committed recipe with one fault; its result is judged against
the committed baseline and the accepted artifact of the healthy recipe, as a real
regression would be: side by side with the accepted file measured in this run, so the
verdicts do not depend on the machine that recorded the baselines.
"""

import pytest

from compressgate.gate import baselines, envelope, rules
from compressgate.gate.latency import LatencyReference, check_latency

pytestmark = pytest.mark.tf
MODEL = "digits_cnn"


def planted(session, base: str, fault: str, overrides: dict):
    healthy = session.runner.recipe(MODEL, base)
    recipe = healthy.with_overrides({"name": f"{base}_{fault}", **overrides})
    return recipe, session.runner.row(MODEL, recipe)


def reference(session, base: str, recipe) -> rules.Reference:
    """The committed baseline of ``base``, seen from this run, for the planted ``recipe``
    (fault knobs are not part of a recipe's digest: a planted fault keeps its inputs)."""
    stored = session._load(MODEL, base)
    assert stored is not None, f"no committed baseline for {MODEL} x {base}"
    accepted, why = stored.accepted()
    assert accepted is not None, why
    row = session.runner.row(MODEL, recipe)
    side = session.runner.side_by_side(MODEL, recipe, accepted)
    return rules.Reference(stored.metrics, stored.machine(session.machine_class),
                          session.machine_class, side,
                          build_changes=session.build_changes(stored),
                          changed_inputs=tuple(k for k, v in row.inputs.items()
                                               if stored.inputs.get(k) != v),
                          finetuned=recipe.needs_finetune)


def failed_metrics(verdict):
    return {r.metric for r in verdict.regressions}


def test_healthy_recipes_pass_every_check(session):
    for base in ("float", "ptq_int8"):
        row = session.runner.row(MODEL, base)
        promise = session.promise(MODEL, base)
        for verdict in (rules.check_conversion(row, promise), rules.check_accuracy(row, promise),
                        rules.check_size(row, promise),
                        rules.check_baseline(row, reference(session, base,
                                                           session.runner.recipe(MODEL, base)),
                                            session.settings.tolerances)):
            assert not verdict.failed, verdict.table()


def test_optimization_switched_off_fails_size(session):
    recipe, row = planted(session, "ptq_int8", "no_opt", {"optimize": False})
    assert "size_ratio" in failed_metrics(rules.check_size(row, recipe.promise))
    assert {"size_bytes", "gzip_bytes"} <= failed_metrics(
        rules.check_baseline(row, reference(session, "ptq_int8", recipe),
                            session.settings.tolerances))


@pytest.mark.parametrize(("fault", "scale"), [("zero_calibration", 0.0),
                                              ("scaled_calibration", 0.01)])
def test_bad_calibration_fails_accuracy(session, fault, scale):
    recipe, row = planted(session, "ptq_int8", fault, {"calibration_scale": scale})
    assert rules.check_accuracy(row, recipe.promise).failed, row.accuracy_drop_pts
    verdict = rules.check_baseline(row, reference(session, "ptq_int8", recipe),
                                  session.settings.tolerances)
    assert "accuracy" in failed_metrics(verdict), verdict.table()


def test_pruning_that_never_starts_fails_sparsity_and_gzip(session):
    recipe, row = planted(session, "prune_int8", "no_sparsity",
                          {"prune": {"initial_sparsity": 0.0, "final_sparsity": 0.0}})
    assert "gzip_ratio" in failed_metrics(rules.check_size(row, recipe.promise))
    assert {"sparsity", "gzip_bytes"} <= failed_metrics(
        rules.check_baseline(row, reference(session, "prune_int8", recipe),
                            session.settings.tolerances))


def test_int8_io_lost_to_float_fails_conversion(session):
    recipe, row = planted(session, "ptq_int8", "float_io", {"float_io": True})
    verdict = rules.check_conversion(row, recipe.promise)
    assert failed_metrics(verdict) == {"input_dtype", "output_dtype"}, verdict.table()


def test_a_recipe_drifted_to_kernels_xnnpack_lacks_fails_naming_the_ops(session):
    # int16 activations: the committed int8 recipe's file against a drift to int16x8,
    # both planned by this run's interpreter, so it fails on any machine class.
    recipe, row = planted(session, "ptq_int8", "int16x8", {"quantization": "int16x8",
                                                           "promise": {"io_dtype": None}})
    verdict = rules.check_baseline(row, reference(session, "ptq_int8", recipe),
                                  session.settings.tolerances)
    off = next(r for r in verdict.rows if r.metric == rules.COVERAGE_ROW)
    assert off.status == "regression", verdict.table()
    assert off.note.startswith("ops off XNNPACK: CONV_2D 0 -> 3"), off.note
    assert "FULLY_CONNECTED 0 -> 2" in off.note


@pytest.mark.parametrize("base", ["float", "ptq_int8"])
def test_perturbed_weights_fail_only_the_comparison_with_the_accepted_file(session, base):
    # 5 % noise keeps accuracy within tolerance of the accepted file (measured on
    # digits_cnn: float 0.9825 -> 0.9825, int8 0.9825 -> 0.98), so the absolute checks
    # pass; only the outputs, compared side by side with the accepted file, move.
    recipe, row = planted(session, base, "perturbed", {"perturb_weights": 0.05})
    assert row.inputs == session.runner.row(MODEL, base).inputs
    promise = session.promise(MODEL, base)
    assert not rules.check_accuracy(row, promise).failed
    assert not rules.check_size(row, promise).failed
    verdict = rules.check_baseline(row, reference(session, base, recipe),
                                  session.settings.tolerances)
    assert "output difference vs accepted" in failed_metrics(verdict), verdict.table()
    assert "accuracy" not in failed_metrics(verdict), verdict.table()


@pytest.mark.timing
def test_a_slower_runtime_fails_against_this_machine_class_record(session):
    # The same file, 30 % more work per inference (a slower kernel after a runtime
    # upgrade): side by side sees identical bytes, the per-class ratio sees the slowdown.
    # The healthy ratio measured in this run stands in for this class's record, so the
    # test holds on any machine class.
    recipe, _ = planted(session, "ptq_int8", "slow_kernel", {"repeat_invoke": 1.3})
    healthy = session.runner.latency(MODEL, "ptq_int8")
    tol, interval = session.settings.tolerances, healthy.ratio_interval()

    def judge(name, pairs):
        return check_latency(MODEL, name, pairs, recipe.promise,
                                  LatencyReference(healthy.ratio, interval), tol)

    measured = [session.runner.latency(MODEL, recipe) for _ in range(2)]
    slow = [judge(recipe.name, pairs) for pairs in measured]
    # The gate confirms a failure once on fresh interpreters: both must fail, unless the
    # machine was busy while timing: then the gate withholds a regression ("machine
    # busy"), or the pairs are too scattered to tell 1.3x at all (measured here with CI
    # and three TensorFlow jobs on 2 cores: a pass, p = 0.96, 95 % CI 0.31-0.89).
    for pairs, verdict in zip(measured, slow, strict=True):
        row = next(r for r in verdict.rows if r.metric == "latency_ratio")
        if pairs.busy:
            assert (row.status == "skipped" and "machine busy" in row.note) or (
                row.status == "pass" and row.note.startswith("p=")), verdict.table()
        else:
            assert failed_metrics(verdict) == {"latency_ratio"}, verdict.table()
    verdicts = [judge("ptq_int8", session.runner.latency(MODEL, "ptq_int8")) for _ in range(2)]
    assert not all(v.failed for v in verdicts), verdicts[-1].table()


@pytest.mark.timing
def test_a_slower_runtime_fails_against_a_record_that_spans_processes(session):
    # The same fault against a record of this class made the way the update flow makes
    # it (this process and fresh ones, one after another): every process of the slowed
    # run lies beyond the envelope, so the run spends the processes the rule needs and
    # fails, unless the machine was busy, where the verdict is withheld and says so.
    recipe, _ = planted(session, "ptq_int8", "slow_kernel", {"repeat_invoke": 1.3})
    healthy = session.runner.latency(MODEL, "ptq_int8")
    recorded = [healthy, *session.runner.latency_processes(MODEL, "ptq_int8",
                                                           envelope.RECORD_PROCESSES - 1)]
    spread = envelope.record(recorded)[baselines.PROCESS_FIGURE]
    tol = session.settings.tolerances
    first, fresh = session.runner.latency(MODEL, recipe), []

    def measure(n):  # this process's pairs and fresh ones, n in all
        fresh.extend(session.runner.latency_processes(MODEL, recipe, n - 1 - len(fresh)))
        return (first, *fresh[:n - 1])

    runs = envelope.runs_for(spread, measure, 1 + tol.latency_pct / 100, tol.alpha)
    verdict = check_latency(MODEL, recipe.name, first, recipe.promise, LatencyReference(
        healthy.ratio, recorded_processes=tuple(spread)), tol, processes=runs)
    row = next(r for r in verdict.rows if r.metric == "latency_ratio")
    if any(run.busy for run in recorded):
        # Contention widens the recorded envelope itself (measured at load average 12:
        # 0.73-1.32 for a ratio near 1), so a 1.3x fault may lie within it.
        pytest.skip(f"machine busy while recording: envelope {spread}; {row.note}")
    if any(run.busy for run in runs):
        assert row.status in ("regression", "skipped"), verdict.table()
    else:
        assert failed_metrics(verdict) == {"latency_ratio"}, verdict.table()
        assert len(runs) == envelope.processes_needed(len(spread), tol.alpha)


@pytest.mark.timing
def test_a_slower_artifact_fails_side_by_side_on_any_machine(session):
    # The recipe drifted to 16-bit activations: no XNNPACK kernels, reference kernels
    # (measured 21x float on the AVX2 class, 40x on the VNNI class), and no record for
    # this machine class is needed to see it.
    stored = session._load(MODEL, "ptq_int8")
    accepted, why = stored.accepted()
    assert accepted is not None, why
    recipe, _ = planted(session, "ptq_int8", "int16_graph", {"quantization": "int16x8"})
    pairs = session.runner.latency(MODEL, recipe)
    side = session.runner.latency_against(MODEL, recipe, accepted)
    verdict = check_latency(MODEL, recipe.name, pairs, recipe.promise,
                                 LatencyReference(side=side), session.settings.tolerances)
    assert failed_metrics(verdict) == {"time vs accepted"}, verdict.table()
    same = session.runner.latency_against(MODEL, "ptq_int8", accepted)
    assert not check_latency(MODEL, "ptq_int8", pairs, recipe.promise,
                                  LatencyReference(side=same),
                                  session.settings.tolerances).failed
