"""The recovery recipe ``compressgate diagnose`` names when int8 loses more than its
promise: the pure decision on plain numbers, channel-range imbalance, the report lines
and the names it may give. No TensorFlow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compressgate import get_recipe
from compressgate.diagnosis.advice import (
    DOMINANT_ERROR,
    KEEP_FLOAT,
    RANGE_IMBALANCE,
    RECOVERY_RECIPES,
    Advice,
    advise,
    channel_ranges,
    imbalance,
    is_int8,
)
from compressgate.diagnosis.collect import Diagnosis, collect, imbalances
from compressgate.diagnosis.report import markdown, summary_line
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Recipe, registered_recipes

# Recipes other helpers of issue 24 add (data-free quantization): the advice may name
# them before their branch is merged here.
EXPECTED_AFTER_MERGE = {"dfq_int8"}


def decide(layers, imbalances=None, *, drop=5.0, promise=2.0, current="ptq_int8", order=()):
    return advise(drop_pts=drop, promise_pts=promise, layers=layers,
                  imbalances=imbalances or {}, current=current, order=order)


def test_within_the_promise_or_without_a_drop_there_is_nothing_to_advise():
    layers = [("conv2d", 9.0), ("dense", 0.3)]
    assert decide(layers, drop=1.5) is None
    assert decide(layers, drop=2.0) is None  # the promise is "at most"
    assert decide(layers, drop=None) is None
    assert decide(layers, drop=2.01) is not None


def test_a_worst_layer_with_imbalanced_channels_gets_equalization():
    advice = decide([("conv2d", 9.0), ("dense", 3.0)], {"conv2d": 350.0, "dense": 2.0})
    assert advice == Advice("dfq_int8", "conv2d", advice.why)
    assert advice.line() == ("try dfq_int8: conv2d has the largest error (RMSE/scale 9) and "
                             "its weight channel ranges differ 350x (> 100x): cross-layer "
                             "equalization evens them")
    # Equalization comes before keep_float even when the layer dominates: it keeps int8.
    assert decide([("conv2d", 90.0), ("dense", 0.3)], {"conv2d": 101.0}).recipe == "dfq_int8"


def test_the_threshold_is_strict():
    at = decide([("conv2d", 3.0), ("dense", 2.0)], {"conv2d": RANGE_IMBALANCE})
    assert at.recipe == "qat_int8"


def test_the_layer_feeding_the_worst_one_counts_as_its_own():
    order = ["conv2d", "flatten", "dense", "dense_1"]
    advice = decide([("dense", 9.0), ("dense_1", 8.0)], {"conv2d": 500.0, "dense": 1.0,
                                                         "dense_1": 1.0}, order=order)
    assert (advice.recipe, advice.layer) == ("dfq_int8", "dense")
    assert "and the layer feeding it, conv2d's, weight channel ranges differ 500x" in advice.why


def test_a_dominant_layer_comes_before_an_imbalance_elsewhere():
    order = ["dense", "conv2d", "dense_1"]
    layers = [("dense_1", 8.0), ("conv2d", 2.0)]
    assert decide(layers, {"dense": 500.0, "conv2d": 1.0}, order=order).recipe == KEEP_FLOAT
    # Spread error and an imbalance anywhere: the crushed channels are in that layer's
    # int8 output, where per-layer error (in steps of the widest channel) cannot show them.
    spread = decide([("dense_1", 3.0), ("conv2d", 2.0)], {"dense": 500.0, "conv2d": 1.0},
                    order=order)
    assert (spread.recipe, spread.layer) == ("dfq_int8", "dense_1")
    assert spread.line() == (
        "try dfq_int8: weight channel ranges of dense differ 500x (> 100x), its narrow "
        "channels crushed in its int8 output where per-layer error cannot show them "
        "(largest error: dense_1, RMSE/scale 3): cross-layer equalization evens them")


def test_one_dominant_layer_gets_keep_float():
    advice = decide([("dense_1", 8.0), ("conv2d", 2.0), ("dense", 0.3)])
    assert (advice.recipe, advice.layer) == (KEEP_FLOAT, "dense_1")
    assert advice.line() == ('try keep_float = ["dense_1"]: dense_1 has the largest error '
                             "(RMSE/scale 8), 4x or more the next layer's (2)")
    just_below = decide([("dense_1", DOMINANT_ERROR * 2.0 - 0.01), ("conv2d", 2.0)])
    assert just_below.recipe == "qat_int8"
    alone = decide([("dense", 0.5)])
    assert alone.recipe == KEEP_FLOAT and "the only layer with error" in alone.why


def test_spread_error_gets_qat_or_mse_and_never_the_recipe_diagnosed():
    spread = [("conv2d", 3.0), ("conv2d_1", 2.5), ("dense", 2.0)]
    advice = decide(spread)
    assert advice.line() == ("try qat_int8: the error is spread (largest: conv2d, RMSE/scale 3; "
                             "next 2.5) (or lq_int8_mse, without training)")
    assert decide(spread, current="qat_int8").recipe == "lq_int8_mse"
    assert decide(spread, current="lq_int8_mse").recipe == "qat_int8"
    # dfq_int8 that still loses is not sent back to itself.
    assert decide(spread, {"conv2d": 1e3}, current="dfq_int8").recipe == "qat_int8"


def test_without_per_layer_error_the_float_weights_still_decide():
    advice = decide([], {"w/a": 40.0, "w/b": 500.0}, current="lq_int8_static")
    assert (advice.recipe, advice.layer) == ("dfq_int8", None)
    assert advice.why.startswith("weight channel ranges of w/b differ 500x")
    assert "(no per-layer error for this recipe)" in advice.why
    plain = decide([], {"w/a": 40.0}, current="lq_int8_static")
    assert plain.line() == ("try qat_int8: no per-layer error for this recipe, no weight "
                            "channel ranges more than 100x apart (or lq_int8_mse, without "
                            "training)")


def test_channel_ranges_and_imbalance():
    kernel = np.zeros((3, 2, 2, 4))  # output channels on axis 0 (CONV_2D)
    kernel[0] = 0.01
    kernel[1, 0, 0, 0] = -5.0
    kernel[2] = 0.0  # a dead channel loses nothing
    np.testing.assert_allclose(channel_ranges(kernel, 0), [0.01, 5.0, 0.0])
    assert imbalance(channel_ranges(kernel, 0)) == pytest.approx(500.0)
    np.testing.assert_allclose(channel_ranges(kernel, 3), [5.0, 0.01, 0.01, 0.01])
    assert channel_ranges(kernel, None).tolist() == [5.0]
    assert imbalance([0.0, 3.0]) == 1.0 and imbalance([]) == 1.0


def test_imbalances_of_no_float_file_are_none():
    assert imbalances(None, ["conv2d"], name="m x float") == ()


def test_advice_is_for_int8_recipes():
    assert is_int8(get_recipe("ptq_int8")) and is_int8(get_recipe("lq_int8_static"))
    assert is_int8(get_recipe("lq_int8_mse")) and is_int8(get_recipe("qat_int8"))
    for name in ("ptq_dynamic", "prune", "lq_int4_mse", "lq_int8_dynamic"):
        assert not is_int8(get_recipe(name)), name


def test_every_name_the_advice_gives_is_registered_or_expected():
    registered = {r.name for r in registered_recipes()}
    assert set(RECOVERY_RECIPES) <= registered | EXPECTED_AFTER_MERGE
    assert KEEP_FLOAT in {f.name for f in dataclasses.fields(Recipe)}
    given = {decide([("a", 9.0), ("b", 1.0)], {"a": 1e3}).recipe,
             decide([("a", 3.0), ("b", 2.0)]).recipe,
             decide([("a", 3.0), ("b", 2.0)], current="qat_int8").recipe}
    assert given == set(RECOVERY_RECIPES)


def test_the_report_and_the_gate_note_name_the_recipe():
    advice = decide([("conv2d", 9.0), ("dense", 3.0)], {"conv2d": 350.0})
    diag = Diagnosis("m", "ptq_int8", imbalances=(("conv2d", 350.0), ("dense", 2.0)),
                     advice=advice, problems=("m x ptq_int8: no debugger here",))
    text = markdown(diag)
    assert "## Recovery recipe to try\n\n" + advice.line() + "." in text
    assert "| conv2d | 350x |" in text and "| dense | 2x |" in text
    assert summary_line(diag).endswith("; " + advice.line())
    quiet = Diagnosis("m", "ptq_int8")
    assert "Recovery" not in markdown(quiet) and "try" not in summary_line(quiet)


class _Outcome:
    converted, error, tflite, search = True, None, None, None


class _Runner:
    """A ptq_int8 result that lost ``drop`` points; the float file is not looked at."""

    def __init__(self, drop):
        self.drop, self.asked = drop, []

    def recipe(self, model, recipe):
        return get_recipe(recipe) if isinstance(recipe, str) else recipe

    def outcome(self, model, recipe):
        self.asked.append(recipe.name)
        return _Outcome()

    def row(self, model, recipe):
        return ResultRow(model, recipe.name, True, accuracy=0.9, float_accuracy=0.9,
                         accuracy_drop_pts=self.drop)

    def spec(self, model):
        return model

    def data(self, model):
        return None


def _stat(tensor, rmse, scale, op="CONV_2D"):
    return {"op_name": op, "tensor_idx": "1", "num_elements": "64", "max_abs_error": "1",
            "mean_squared_error": str(rmse ** 2), "scale": str(scale),
            "tensor_name": tensor}


@pytest.mark.parametrize(("drop", "expected"), [(5.0, KEEP_FLOAT), (1.0, None)])
def test_collect_advises_from_the_debugger_layers_and_the_row(drop, expected):
    def debugger(spec, recipe, data):
        return [_stat("m/dense/MatMul", 0.4, 0.05, "FULLY_CONNECTED"),  # 8 steps
                _stat("m/conv2d/Conv2D", 0.01, 0.1),                   # 0.1 steps
                _stat("StatefulPartitionedCall:0", 0.05, 0.01, "SOFTMAX")  # 5, no layer
                ], ["conv2d", "dense"]

    runner = _Runner(drop)
    diag = collect(runner, "m", "ptq_int8", debugger=debugger)
    assert (diag.advice.recipe if diag.advice else None) == expected
    # The largest error overall is named; keep_float can only keep a Keras layer.
    assert "- largest error: dense (FULLY_CONNECTED), RMSE/scale 8\n" in markdown(diag)
    if expected:
        assert diag.advice.layer == "dense"
    assert runner.asked == ["ptq_int8", "float"]  # the float file's weights were read
    assert collect(_Runner(drop), "m", "ptq_float16", debugger=debugger).advice is None
