"""Delegate coverage on a real conversion: a recipe drifted to int16 activations (kernels
XNNPACK lacks) fails the baseline check against the accepted int8 file, naming the ops it
left to the built-in kernels; the healthy recipe passes."""

import pytest
import tiny

from compressgate.gate import baselines, rules
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.tolerances import Tolerances

pytestmark = pytest.mark.tf
MODEL = tiny.MODEL


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    directory = tiny.build(tmp_path_factory.mktemp("coverage"))
    return Runner(config.load(directory / "manifest.json").specs,
                  ResultCache(directory / "cache"), isolate=False)


def judged(runner, recipe, accepted_recipe="ptq_int8"):
    """``recipe``'s baseline verdict against the accepted file of ``accepted_recipe``."""
    accepted = runner.outcome(MODEL, accepted_recipe)
    row = runner.row(MODEL, recipe)
    side = runner.side_by_side(MODEL, recipe, accepted.tflite, with_memory=False)
    metrics = baselines.recorded_metrics(runner.row(MODEL, accepted_recipe))
    return row, rules.check_baseline(row, rules.Reference(metrics, side=side),
                                     Tolerances())


def coverage_row(verdict):
    return next(r for r in verdict.rows if r.metric == rules.COVERAGE_ROW)


def test_the_row_carries_what_xnnpack_took(runner):
    row = runner.row(MODEL, "ptq_int8")
    # int8 SOFTMAX stays on the built-in kernels in ai-edge-litert 2.3.0.
    assert row.coverage.delegated == {"FULLY_CONNECTED": 2}
    assert row.coverage.builtin == {"SOFTMAX": 1}
    assert row.to_dict()["builtin_ops"] == {"SOFTMAX": 1}


def test_the_healthy_recipe_passes_against_its_accepted_file(runner):
    _, verdict = judged(runner, "ptq_int8")
    assert coverage_row(verdict).status == "pass"
    assert coverage_row(verdict).note.startswith("XNNPACK 2 of 3 ops")


def test_a_recipe_drifted_to_int16_activations_fails_naming_the_ops(runner):
    drifted = runner.recipe(MODEL, "ptq_int16x8").with_overrides(
        {"name": "ptq_int8_drifted_int16x8"})
    row, verdict = judged(runner, drifted)
    assert row.coverage.delegated == {}
    got = coverage_row(verdict)
    assert got.status == "regression" and verdict.failed
    assert "FULLY_CONNECTED 0 -> 2" in got.note and "QUANTIZE 0 -> 1" in got.note
    assert got.note.startswith("ops off XNNPACK: ")


def test_where_the_time_goes_names_the_ops_off_xnnpack(runner):
    drifted = runner.recipe(MODEL, "ptq_int16x8").with_overrides(
        {"name": "ptq_int8_drifted_int16x8"})
    assert "of invoke time in the 5 of 5 ops off XNNPACK (DEQUANTIZE 1, FULLY_CONNECTED 2, " \
           "QUANTIZE 1, SOFTMAX 1)" in runner.where_time_goes(MODEL, drifted)
    assert runner.where_time_goes(MODEL, "float") == \
        "all 3 ops run on XNNPACK: the time is not in built-in kernels"
