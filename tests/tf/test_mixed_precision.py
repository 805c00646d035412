"""Diagnosis and mixed precision on a real conversion: a tiny MLP whose middle layer has
a weight outlier that full-integer PTQ crushes (tests/outlier.py)."""

import outlier
import pytest

from compressgate.diagnosis.collect import collect
from compressgate.diagnosis.report import diagnose_note, write
from compressgate.gate import rules
from compressgate.gate.session import GateSession, Settings
from compressgate.measure import flatbuffer
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf
MODEL = outlier.MODEL


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return outlier.build(tmp_path_factory.mktemp("outlier"))


@pytest.fixture(scope="module")
def runner(fixtures):
    return Runner(config.load(fixtures / "manifest.json").specs, ResultCache(fixtures / "cache"))


def mixed(name, **fields):
    return get_recipe("qat_int8" if name.startswith("qat") else "ptq_int8").with_overrides(
        {"name": name, **fields})


def float_fully_connected(tflite):
    """How many FULLY_CONNECTED ops compute in float, and how many in all."""
    ops = [op for op in flatbuffer.inspect(tflite).ops if op.name == "FULLY_CONNECTED"]
    return sum(op.float_tensors for op in ops), len(ops)


def test_debugger_table_names_the_crushed_layer(runner, tmp_path):
    diag = collect(runner, MODEL, "ptq_int8")
    assert diag.problems == ()
    worst, *rest = diag.layers
    assert (worst.name, worst.ops) == ("wide", ("FULLY_CONNECTED",))
    assert worst.rmse_over_scale > 10 > 1 > max(e.rmse_over_scale for e in rest)
    assert {e.name for e in rest if e.mapped} == {"hidden", "head"}
    # The crushed weights show in the file too: most of "wide" rounds to zero.
    wide = [w for w in diag.sparsity if "/wide/" in w[0]]
    assert len(wide) == 1 and wide[0][2] / wide[0][1] > 0.9
    paths = write(diag, tmp_path)
    assert "| wide | FULLY_CONNECTED |" in paths[0].read_text()


def test_diagnose_names_keep_float_of_the_dominant_layer(runner):
    """The recovery recipe on a real conversion: "wide" carries the error alone (its
    outlier row is in every output channel, so its channel ranges are even: not a case
    for equalization)."""
    diag = collect(runner, MODEL, "ptq_int8")
    assert diag.row.accuracy_drop_pts > runner.recipe(MODEL, "ptq_int8").promise.max_drop_pts
    imbalances = dict(diag.imbalances)
    assert set(imbalances) == {"hidden", "wide", "head"}  # float weights, by Keras layer
    assert imbalances["wide"] < 2
    assert (diag.advice.recipe, diag.advice.layer) == ("keep_float", "wide")
    assert diag.advice.line().startswith('try keep_float = ["wide"]: wide has the largest '
                                         "error (RMSE/scale ")


def test_keep_float_list_keeps_that_layer_float_in_ptq(runner):
    row = runner.row(MODEL, mixed("ptq_int8_keep_wide", keep_float=["wide"]))
    out = runner.outcome(MODEL, mixed("ptq_int8_keep_wide", keep_float=["wide"]))
    assert float_fully_connected(out.tflite) == (1, 3)
    assert row.kept_float == ("wide",)
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(row.ops)
    assert (row.input_dtype, row.output_dtype) == ("int8", "int8")
    assert row.accuracy_drop_pts < 2.0


def test_keep_float_list_keeps_that_layer_float_in_qat(runner):
    recipe = mixed("qat_int8_keep_head", keep_float=["head"], finetune={"epochs": 1})
    out = runner.outcome(MODEL, recipe)
    assert out.converted, out.error
    assert float_fully_connected(out.tflite) == (1, 3)
    graph = flatbuffer.graph(out.tflite)
    float_outputs = [names for op, names in graph.op_outputs if op == "FULLY_CONNECTED"]
    assert any("/head/" in n for n in float_outputs[-1])
    assert out.kept_float == ("head",)


def test_keep_float_auto_fixes_the_planted_failure(runner):
    plain = runner.row(MODEL, "ptq_int8")
    promise = runner.recipe(MODEL, "ptq_int8").promise
    assert rules.check_accuracy(plain, promise).failed, plain.accuracy_drop_pts
    recipe = mixed("ptq_int8_auto", keep_float="auto")
    fixed = runner.row(MODEL, recipe)
    assert fixed.kept_float == ("wide",)
    assert not rules.check_accuracy(fixed, recipe.promise).failed, fixed.accuracy_drop_pts
    assert fixed.size_bytes > plain.size_bytes  # the float layer's cost
    search = runner.outcome(MODEL, recipe).search
    assert search["ranking"][0] == "wide" and search["fits"]
    assert [s["kept_float"] for s in search["steps"]] == [(), ("wide",)]


def test_unknown_layer_fails_that_result_with_one_line(runner):
    row = runner.row(MODEL, mixed("ptq_int8_typo", keep_float=["wdie"]))
    assert not row.converted
    assert row.error == (f"model {MODEL!r}, recipe ptq_int8_typo: keep_float names unknown "
                            "layer 'wdie' (the model's layers: hidden, wide, dropout, head)")


def test_gate_accuracy_failure_names_the_worst_layer(fixtures, tmp_path):
    session = GateSession(Settings(config=fixtures / "manifest.json",
                                   baselines=tmp_path / "baselines",
                                   reports=tmp_path / "reports", recipes=("ptq_int8",)),
                          diagnoser=diagnose_note)
    session._runner = Runner(session.specs, ResultCache(fixtures / "cache"))
    outcome = session.run_check(MODEL, "ptq_int8", "accuracy")
    assert outcome.failed
    assert "worst layers by RMSE/scale" in outcome.message()
    assert "wide (FULLY_CONNECTED)" in outcome.message()
    assert (tmp_path / "reports" / "diagnosis" / f"{MODEL}-ptq_int8.csv").is_file()


def test_tensorboard_gets_pruning_summaries_and_fit_logs(fixtures, tmp_path, monkeypatch):
    from compressgate.backends.tf import TENSORBOARD_ENV

    monkeypatch.setenv(TENSORBOARD_ENV, str(tmp_path / "tb"))
    recipe = get_recipe("prune").with_overrides(
        {"name": "prune_tb", "finetune": {"epochs": 1}, "prune": {"skip_first_and_last": False}})
    fresh = Runner(config.load(fixtures / "manifest.json").specs, ResultCache(tmp_path / "cache"))
    assert fresh.outcome(MODEL, recipe).converted
    events = list((tmp_path / "tb" / f"{MODEL}-prune_tb").rglob("events.out.tfevents.*"))
    assert events  # Keras' train/ logs and tfmot's per-layer sparsity scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"]) | set(accumulator.Tags()["tensors"])
    assert any("sparsity" in t for t in tags), sorted(tags)
    assert any("loss" in t for t in tags), sorted(tags)


def test_layer_without_ops_fails_that_result_with_one_line(runner):
    row = runner.row(MODEL, mixed("ptq_int8_dropout", keep_float=["dropout"]))
    assert not row.converted
    assert row.error.startswith(f"model {MODEL!r}, recipe ptq_int8_dropout: keep_float "
                                   "layer 'dropout' has no op of its own")
