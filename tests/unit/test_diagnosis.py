"""Diagnosis without TensorFlow: name mapping, ranking, the keep_float search and
recipe fields, the report files, and the gate's diagnose-on-failure hook."""

import json
import math

import pytest

from compressgate import Recipe, UserInputError, get_recipe
from compressgate.backends.analysis import (
    Step,
    candidates,
    layer_of,
    layers_in,
    nodes_of,
    offenders,
    rank,
    resolve_keep_float,
    search_keep_float,
    step,
    tensor_errors,
    without_ops,
)
from compressgate.diagnosis.collect import Diagnosis, collect
from compressgate.diagnosis.report import csv_text, markdown, summary_line, write
from compressgate.gate.session import GateSession, Settings
from compressgate.pipeline.cache import key
from compressgate.pipeline.record import ResultRow

LAYERS = ["up_sampling2d", "conv2d", "conv2d_1", "dense", "dense_1"]


def stat(tensor, mse, scale, op="CONV_2D"):
    return {"op_name": op, "tensor_idx": "1", "num_elements": "64.0", "stddev": "0",
            "mean_error": "0", "max_abs_error": str(math.sqrt(mse) * 3),
            "mean_squared_error": str(mse), "scale": str(scale), "zero_point": "-128",
            "tensor_name": tensor}


def test_layer_of_reads_the_keras_layer_out_of_fused_tensor_names():
    fused = "cnn/conv2d_1/Relu;cnn/conv2d_1/BiasAdd;cnn/conv2d_1/Conv2D"
    assert layer_of(fused, LAYERS) == "conv2d_1"
    assert layer_of("cnn/dense/MatMul;cnn/dense/BiasAdd", LAYERS) == "dense"
    # The model name comes first even when a layer shares it.
    assert layer_of("dense/dense_1/MatMul", LAYERS) == "dense_1"
    assert layer_of("StatefulPartitionedCall:0", LAYERS) is None
    assert layer_of("tfl.unidirectional_sequence_lstm", ["lstm", "dense"]) is None


def test_fused_conv_batchnorm_relu_belongs_to_the_conv_and_each_keeps_it_float():
    names = ["conv2d", "batch_normalization", "re_lu", "dropout", "dense"]
    fused = "m/re_lu/Relu;m/batch_normalization/FusedBatchNormV3;m/conv2d/Conv2D"
    assert layers_in(fused, names) == ["conv2d", "batch_normalization", "re_lu"]
    assert layer_of(fused, names) == "conv2d"
    outputs = [("CONV_2D", (fused,)), ("FULLY_CONNECTED", ("m/dense/MatMul",))]
    for kept in ("conv2d", "batch_normalization", "re_lu"):
        assert nodes_of([kept], outputs, names) == [fused]
    assert without_ops(["dense", "dropout", "re_lu"], outputs, names) == ["dropout"]


def test_rank_puts_the_worst_layer_first_with_deterministic_ties():
    rows = [stat("m/conv2d/Conv2D", 0.01 ** 2, 0.1),             # 0.1 steps
            stat("m/dense/MatMul", 4.0, 0.05, "FULLY_CONNECTED"),  # 40 steps
            stat("m/dense/Relu", 0.0, 0.05, "RELU"),               # same layer, better
            stat("m/conv2d_1/Conv2D", 0.01 ** 2, 0.1),             # ties conv2d
            stat("StatefulPartitionedCall:0", 1e-6, 0.0039, "SOFTMAX")]
    ranked = rank(tensor_errors(rows, LAYERS))
    assert [e.name for e in ranked] == ["dense", "StatefulPartitionedCall:0", "conv2d",
                                        "conv2d_1"]
    assert ranked[0].ops == ("FULLY_CONNECTED", "RELU")
    assert ranked[0].rmse_over_scale == pytest.approx(40.0)
    assert not ranked[1].mapped
    assert offenders(ranked, 1) == "dense (FULLY_CONNECTED/RELU) RMSE/scale 40"
    exact = tensor_errors([stat("m/dense_1/MaxPool", 1e-16, 0.05, "MAX_POOL_2D")], LAYERS)
    assert candidates([*ranked, *rank(exact)]) == ["dense", "conv2d", "conv2d_1"]
    assert offenders([]) == "no per-layer statistics"


def test_unknown_keep_float_layer_names_model_recipe_and_layers():
    with pytest.raises(UserInputError) as info:
        resolve_keep_float(["dense", "dnse"], LAYERS, model="digits_cnn", recipe="ptq_int8")
    message = str(info.value)
    assert "\n" not in message
    assert "digits_cnn" in message and "ptq_int8" in message and "'dnse'" in message
    assert "up_sampling2d, conv2d, conv2d_1, dense, dense_1" in message
    # Known names come back in the model's order.
    assert resolve_keep_float(["dense_1", "conv2d"], LAYERS, model="m", recipe="r") == (
        "conv2d", "dense_1")


def test_nodes_of_collects_every_op_output_of_the_kept_layers():
    outputs = [("CONV_2D", ("m/conv2d/Relu;m/conv2d/Conv2D",)),
               ("MAX_POOL_2D", ("m/max_pooling2d/MaxPool",)),
               ("FULLY_CONNECTED", ("m/dense/MatMul",)), ("SOFTMAX", ("Identity",))]
    assert nodes_of(["conv2d", "dense"], outputs, [*LAYERS, "max_pooling2d"]) == [
        "m/conv2d/Relu;m/conv2d/Conv2D", "m/dense/MatMul"]


def fake_evaluate(fixes, accuracies=None):
    """Accuracy 0.5 until every layer in ``fixes`` is float, then 0.99; records calls."""
    calls = []

    def evaluate(kept):
        calls.append(kept)
        accuracy = 0.99 if set(fixes) <= set(kept) else 0.5
        return step(kept, accuracy, 1.0, 1000 + 100 * len(kept))

    return evaluate, calls


def test_search_keeps_worst_layers_float_until_the_drop_fits():
    evaluate, calls = fake_evaluate({"b", "c"})
    search = search_keep_float(["b", "c", "a"], evaluate, budget_pts=2.0, float_accuracy=1.0)
    assert calls == [(), ("b",), ("b", "c")]  # stops as soon as it fits
    assert search.fits and search.chosen == Step(("b", "c"), 0.99, 1.0, 1200)
    again, _ = fake_evaluate({"b", "c"})
    assert search_keep_float(["b", "c", "a"], again, budget_pts=2.0,
                             float_accuracy=1.0) == search


def test_search_that_cannot_fit_keeps_nothing_float():
    def evaluate(kept):  # each layer helps a little, never enough
        calls.append(kept)
        return step(kept, 0.5 + 0.1 * len(kept), 1.0, 1000)

    calls = []
    search = search_keep_float(["a", "b"], evaluate, budget_pts=2.0, float_accuracy=1.0)
    assert calls == [(), ("a",), ("a", "b")]
    assert not search.fits and search.chosen.kept_float == ()


def test_search_with_nothing_to_do_evaluates_once():
    evaluate, calls = fake_evaluate(set())
    search = search_keep_float(["a"], evaluate, budget_pts=2.0, float_accuracy=1.0)
    assert calls == [()] and search.fits and search.chosen.kept_float == ()


# -- recipe field ----------------------------------------------------------------------


def test_keep_float_round_trips_and_enters_the_cache_key():
    base = get_recipe("ptq_int8")
    listed = base.with_overrides({"name": "mixed", "keep_float": ["conv2d", "dense_1"]})
    assert listed.keep_float == ("conv2d", "dense_1")
    assert Recipe.from_dict(listed.to_dict()) == listed
    assert Recipe.from_dict(json.loads(json.dumps(listed.to_dict()))) == listed
    auto = base.with_overrides({"name": "mixed", "keep_float": "auto"})
    assert Recipe.from_dict(auto.to_dict()) == auto
    keys = {key({"r": r.to_dict()}) for r in (base.with_overrides({"name": "mixed"}),
                                              listed, auto)}
    assert len(keys) == 3
    # Recipes without it keep their old dict, so existing cache entries stay valid.
    assert "keep_float" not in base.to_dict()


def test_keep_float_means_float_ops_are_promised():
    mixed = get_recipe("qat_int8").with_overrides({"keep_float": ["dense"]})
    assert mixed.promise.integer_only is False
    assert mixed.promise.io_dtype == "int8"
    assert get_recipe("qat_int8").promise.integer_only is True


@pytest.mark.parametrize(("recipe", "value", "match"), [
    ("ptq_int8", [], "non-empty list"),
    ("ptq_int8", "all", "non-empty list"),
    ("ptq_int8", ["dense", 3], "non-empty list"),
    ("ptq_dynamic", ["dense"], "int8 PTQ or QAT"),
    ("prune_int8", ["dense"], "int8 PTQ or QAT"),
    ("qat_int8", "auto", "QAT"),
])
def test_bad_keep_float_is_one_clear_line(recipe, value, match):
    with pytest.raises(UserInputError, match=match) as info:
        get_recipe(recipe).with_overrides({"keep_float": value})
    assert "keep_float" in str(info.value) and "\n" not in str(info.value)


# -- reports ---------------------------------------------------------------------------


def sample_diagnosis(**extra):
    rows = [stat("m/dense/MatMul", 4.0, 0.05, "FULLY_CONNECTED"),
            stat("m/conv2d/Conv2D", 1e-4, 0.1)]
    tensors = tensor_errors(rows, LAYERS)
    fields = {"layers": tuple(rank(tensors)), "tensors": tuple(tensors),
              "sparsity": (("m/dense/MatMul", 100, 80),),
              "row": ResultRow("m", "ptq_int8", True, accuracy=0.5, float_accuracy=0.98,
                               accuracy_drop_pts=48.0, size_bytes=1234)}
    return Diagnosis("m", "ptq_int8", **{**fields, **extra})


def test_report_files_hold_the_full_table(tmp_path):
    diag = sample_diagnosis(problems=("m x ptq_int8: something could not be diagnosed",))
    paths = write(diag, tmp_path / "diagnosis")
    assert [p.name for p in paths] == ["m-ptq_int8.md", "m-ptq_int8.csv", "m-ptq_int8.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    lines = csv_text(diag).splitlines()
    assert lines[0].startswith("layer,op,tensor") and len(lines) == 3
    assert lines[1].startswith("dense,FULLY_CONNECTED,m/dense/MatMul,64,2,0.05,40,")
    text = markdown(diag)
    assert "| dense | FULLY_CONNECTED | 40 |" in text
    assert "problem: m x ptq_int8: something could not be diagnosed" in text
    assert "| m/dense/MatMul | 100 | 80 | 0.800 |" in text
    assert summary_line(diag).endswith("dense (FULLY_CONNECTED) RMSE/scale 40, "
                                       "conv2d (CONV_2D) RMSE/scale 0.1")


def test_report_without_layer_figures_still_written(tmp_path):
    diag = Diagnosis("m", "prune", problems=("m x prune: not int8",))
    paths = write(diag, tmp_path)
    assert [p.suffix for p in paths] == [".md", ".csv"]
    assert summary_line(diag) == "diagnosis: m x prune: not int8"


# -- collect, on a stand-in runner -----------------------------------------------------


class Outcome:
    def __init__(self, converted=True, error=None):
        self.converted, self.error, self.tflite, self.search = converted, error, None, None


class StubRunner:
    def __init__(self, outcome):
        self._outcome = outcome

    def recipe(self, model, recipe):
        return get_recipe(recipe) if isinstance(recipe, str) else recipe

    def outcome(self, model, recipe):
        return self._outcome

    def row(self, model, recipe):
        return ResultRow(model, recipe.name, converted=False)

    def spec(self, model):
        return model

    def data(self, model):
        return None


def test_collect_records_what_failed_and_keeps_the_rest():
    def broken(spec, recipe, data):
        raise UserInputError(f"model {spec}, recipe {recipe.name}: debugger cannot handle it")

    diag = collect(StubRunner(Outcome(False, "converter failed: LSTM")), "m", "ptq_int8",
                   debugger=broken)
    assert diag.problems == ("m x ptq_int8: not converted (converter failed: LSTM)",
                             "model m, recipe ptq_int8: debugger cannot handle it")
    assert diag.row == ResultRow("m", "ptq_int8", converted=False)

    def working(spec, recipe, data):
        return [stat("m/dense/MatMul", 4.0, 0.05, "FULLY_CONNECTED")], LAYERS

    diag = collect(StubRunner(Outcome()), "m", "ptq_int8", debugger=working)
    assert diag.problems == () and diag.layers[0].name == "dense"
    diag = collect(StubRunner(Outcome()), "m", "prune", debugger=working)
    assert diag.layers == () and "not full-integer int8" in diag.problems[0]


# -- the gate's hook -------------------------------------------------------------------


class GateRunner:
    def __init__(self, drop):
        self.drop = drop

    def precompute(self, plan, jobs):
        pass

    def measure_files(self, plan, jobs):
        pass

    def recipe(self, model, name):
        return get_recipe(name)

    def row(self, model, recipe):
        return ResultRow(model, recipe, True, accuracy=0.9,
                         float_accuracy=0.9 + self.drop / 100, accuracy_drop_pts=self.drop)


@pytest.mark.parametrize("drop", [0.5, 5.0])
def test_gate_diagnoses_an_accuracy_failure_and_only_a_failure(tmp_path, drop):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "manifest.json").write_text(json.dumps(
        {"models": {"m": {"model": "m.keras", "data": "m.npz"}}}))
    calls = []

    def diagnoser(session, model, recipe):
        calls.append((model, recipe))
        return "worst layers: dense"

    session = GateSession(Settings(config=fixtures / "manifest.json", reports=None,
                                   recipes=("ptq_int8",)),
                          runner=GateRunner(drop), diagnoser=diagnoser)
    outcome = session.run_check("m", "ptq_int8", "accuracy")
    assert session.run_check("m", "ptq_int8", "size").verdict.notes == ()
    if drop < 2:
        assert not outcome.failed and calls == []
    else:
        assert outcome.failed and calls == [("m", "ptq_int8")]
        assert "note: worst layers: dense" in outcome.message()


def test_manifest_override_sets_keep_float(tmp_path):
    from compressgate.project.models import ModelSpec

    spec = ModelSpec("m", tmp_path / "m.keras", tmp_path / "m.npz", recipe_overrides={
        "ptq_int8": {"keep_float": ["conv2d"], "why": "first layer"}})
    recipe = spec.recipe(get_recipe("ptq_int8"))
    assert recipe.keep_float == ("conv2d",) and recipe.name == "ptq_int8"
    bad = ModelSpec("m", tmp_path / "m.keras", tmp_path / "m.npz", recipe_overrides={
        "ptq_dynamic": {"keep_float": ["conv2d"]}})
    with pytest.raises(UserInputError, match="ptq_dynamic: keep_float"):
        bad.recipe(get_recipe("ptq_dynamic"))
