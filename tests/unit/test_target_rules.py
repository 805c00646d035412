"""Target runtimes without TensorFlow: the targets rule, its update flow, TFLM's log
parsing, and the measurement on a committed ``.tflite`` (tflite-micro present and
missing)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_session import ROW, path
from test_session import make as make

from compressgate.gate import targets as targets_rules
from compressgate.gate.records import Status
from compressgate.measure import litert, targets, tflm
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Recipe, declared_targets, get_recipe
from compressgate.tolerances import Tolerances

ARENA = targets.ARENA_FIGURE
ROOT = Path(__file__).resolve().parents[2]
INT8 = ROOT / "baselines" / "digits_cnn" / "ptq_int8.tflite"
TARGET_ROW = {**ROW, "targets": ["tflm"], "kernel_agreement": 1.0, "kernel_max_quanta": 1,
              "tflm_loads": True, "tflm_error": None, ARENA: 10_000, "tflm_accuracy": 0.97,
              "tflm_ref_agreement": 1.0, "tflm_max_quanta": 0, "tflm_max_diff": 0.0,
              "tflm_version": "0.devX"}
INT8_PROMISE = get_recipe("ptq_int8").promise


def judge(row=None, promise=INT8_PROMISE, accepted=None, **changes):
    return targets_rules.check_targets(
        ResultRow.from_dict({**(row or TARGET_ROW), **changes}), promise,
        accepted if accepted is not None else {ARENA: 10_000}, Tolerances())


def by_metric(verdict):
    return {r.metric: r for r in verdict.rows}


def test_full_integer_recipes_promise_tflm_by_default():
    assert [r for r in ("float", "ptq_dynamic", "ptq_float16", "ptq_int8", "ptq_int16x8",
                        "qat_int8", "prune", "prune_int8", "prune_2by4")
            if declared_targets(get_recipe(r))] == ["ptq_int8", "qat_int8", "prune_int8"]
    assert declared_targets(get_recipe("ptq_int8").with_overrides(
        {"name": "x", "promise": {"targets": []}})) == ()
    # Fields left unset keep a recipe's dict (its cache key and recorded digest) as it was.
    assert "targets" not in get_recipe("ptq_int8").to_dict()["promise"]


@pytest.mark.parametrize("field,value", [("targets", ["esp32"]), ("max_arena_kib", -1),
                                         ("min_kernel_agreement", 1.5)])
def test_bad_target_promises_name_the_field(field, value):
    from compressgate.errors import UserInputError

    with pytest.raises(UserInputError, match=f"promise.{field}"):
        Recipe.from_dict({"name": "x", "promise": {field: value}})


def test_a_missing_op_fails_with_the_op_named():
    why = "op TOPK_V2 is not in TFLM's op resolver"
    verdict = judge(tflm_loads=False, tflm_error=why)
    assert verdict.failed and by_metric(verdict)["runs on TFLM"].note == why


def test_arena_growth_beyond_the_tolerance_fails():
    assert not judge(**{ARENA: 10_100}).failed  # exactly +1 %
    row = by_metric(judge(**{ARENA: 10_101}))[ARENA]
    assert row.status == Status.REGRESSION and judge(**{ARENA: 10_101}).failed
    assert by_metric(judge(**{ARENA: 9_000}))[ARENA].status == Status.IMPROVED


def test_arena_budget():
    promise = replace(INT8_PROMISE, max_arena_kib=9.0)
    assert by_metric(judge(promise=promise, **{ARENA: 9 * 1024}))["arena KiB"].status \
        == Status.PASS
    assert judge(promise=promise, **{ARENA: 9 * 1024 + 11}).failed


def test_without_an_accepted_arena_it_is_not_judged_and_says_how_to_record():
    row = by_metric(judge(accepted={}))[ARENA]
    assert row.status == Status.SKIPPED and row.missing
    assert row.note.startswith("not judged: no accepted arena figure; record with")


def test_tflm_outputs_must_equal_the_reference_kernels_within_one_quantum():
    assert not judge(tflm_max_quanta=1).failed  # the default: one requantization's rounding
    assert judge(tflm_max_quanta=2).failed
    assert judge(promise=replace(INT8_PROMISE, max_tflm_quanta=0), tflm_max_quanta=1).failed
    assert not judge(promise=replace(INT8_PROMISE, max_tflm_quanta=2), tflm_max_quanta=2).failed


def test_tflite_micro_missing_skips_in_one_line():
    why = "not run: tflite-micro not importable (ImportError: nope)"
    verdict = judge(tflm_loads=None, tflm_error=why, **{ARENA: None})
    assert not verdict.failed
    assert [(r.metric, r.status, r.note) for r in verdict.rows[1:]] == [
        ("runs on TFLM", Status.SKIPPED, why)]


def test_kernel_agreement_is_judged_only_when_promised():
    assert by_metric(judge(kernel_agreement=0.9))["kernel agreement"].status == Status.INFO
    promise = replace(INT8_PROMISE, min_kernel_agreement=0.995)
    assert judge(promise=promise, kernel_agreement=0.9925).failed
    assert not judge(promise=promise, kernel_agreement=0.995).failed


def test_update_missing_adds_the_arena_and_moves_nothing(make):
    make("missing", row=ROW).run_check("m", "ptq_int8", "baseline")  # a record without it
    before = json.loads(path(make).read_text())
    assert ARENA not in before["metrics"]
    session = make("missing", row=TARGET_ROW)
    outcome = session.run_check("m", "ptq_int8", "targets")
    assert not outcome.failed and outcome.update is not None
    after = json.loads(path(make).read_text())
    added = {ARENA: 10_000, "tflm_version": "0.devX"}
    assert after["metrics"] == {**before["metrics"], **added}
    assert {k: v for k, v in after.items() if k != "metrics"} == \
        {k: v for k, v in before.items() if k != "metrics"}
    # Recorded: "missing" never moves it again, and a grown arena now fails.
    assert make("missing", row={**TARGET_ROW, ARENA: 20_000}).run_check(
        "m", "ptq_int8", "targets").failed
    assert json.loads(path(make).read_text()) == after


def test_load_failures_read_as_one_line():
    assert tflm.load_failure("x\nDidn't find op for builtin opcode 'TOPK_V2'\ny",
                             RuntimeError()) == "op TOPK_V2 is not in TFLM's op resolver"
    assert "hybrid" in tflm.load_failure(
        "Hybrid models are not supported on TFLite Micro.", RuntimeError())
    assert tflm.load_failure("", RuntimeError("TFLM failed to allocate tensors")) == \
        "TFLM cannot load the model: TFLM failed to allocate tensors"
    assert tflm.load_failure(
        "tensorflow/lite/micro/kernels/dequantize_common.cc:42 input->type == kTfLiteInt8 "
        "was not true.\r\nNode DEQUANTIZE (number 0) failed to prepare with status 1\r\n",
        RuntimeError()) == ("DEQUANTIZE (node 0) failed to prepare: kernels/"
                            "dequantize_common.cc:42 input->type == kTfLiteInt8 was not true.")
    assert tflm.arena_used("[RecordingMicroAllocator] Arena allocation total 2048 bytes") \
        == 2048


def test_native_output_is_captured():
    import os

    with tflm.captured_output() as log:
        os.write(2, b"from C\n")
    assert log == ["from C\n"]


def digits(n=12):
    data = np.load(ROOT / "fixtures" / "digits.npz")
    return data["x_test"][:n].astype(np.float32), data["y_test"][:n]


def test_int8_file_on_tflm_equals_the_reference_kernels():
    x, y = digits()
    figures = targets.measure_here(INT8.read_bytes(), x, y)
    assert figures["tflm_loads"] is True
    assert figures[ARENA] == json.loads(INT8.with_suffix(".json").read_text())["metrics"][ARENA]
    assert figures["tflm_max_quanta"] == 0 and figures["tflm_ref_agreement"] == 1.0
    on_litert = np.argmax(litert.predict(INT8.read_bytes(), x).reshape(len(x), -1), -1)
    assert figures["tflm_accuracy"] == np.mean(on_litert == y)
    assert figures["kernel_agreement"] == 1.0


def test_without_tflite_micro_the_rest_is_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import fails as if absent
    figures = targets.measure_here(INT8.read_bytes(), digits()[0], None)
    assert figures["tflm_loads"] is None and figures[ARENA] is None
    assert figures["tflm_error"].startswith("not run: tflite-micro not importable")
    assert "\n" not in figures["tflm_error"]
    assert figures["kernel_agreement"] is not None


def test_reports_show_where_each_result_runs_its_arena_and_parity(tmp_path):
    from test_report_pages import make_row, measured

    from compressgate.report.summary import write_summary

    rows = [make_row(recipe="float", latency_ratio=None, targets=[], tflm_loads=True,
                     tflm_arena_bytes=167952, kernel_agreement=1.0, kernel_max_quanta=None),
            make_row(targets=["tflm"], tflm_loads=True, tflm_arena_bytes=46256,
                     kernel_agreement=0.9975, kernel_max_quanta=12),
            make_row(recipe="ptq_dynamic", targets=[], tflm_loads=False,
                     tflm_error="hybrid models", kernel_agreement=1.0)]
    write_summary(tmp_path, measured(*rows), {"source": "compressgate run", "created": "now"})
    summary = (tmp_path / "summary.md").read_text()
    lines = {line.split(" | ")[1]: line for line in summary.splitlines()
             if line.startswith("| digits |")}
    assert "| 45.2* 0.998/12q |" in lines["ptq_int8"]
    assert "| 164.0 1.000 |" in lines["float"]
    assert "| no 1.000 |" in lines["ptq_dynamic"]
    page = (tmp_path / "index.html").read_text()
    assert "<td>45.2* 0.998/12q</td>" in page and 'id="targets-legend"' in page


FOUND = {"kernel_agreement": 0.99, "kernel_max_quanta": 3, "tflm_loads": True,
         "tflm_error": None, ARENA: 46256, "tflm_max_quanta": 0, "target_rows": 100}


@pytest.mark.parametrize("found,promise,said", [
    (FOUND, None, "runs there with a 45.2 KiB tensor arena, outputs within 0 quanta"),
    ({**FOUND, "tflm_loads": False, "tflm_error": "op TOPK_V2 is not in TFLM's op resolver"},
     {"targets": []}, "ptq_int8 does not run there: op TOPK_V2 is not in TFLM's op resolver"),
    ({**FOUND, "tflm_max_quanta": 2}, {"max_tflm_quanta": 2}, "outputs within 2 quanta"),
])
def test_init_says_which_targets_the_model_meets(tmp_path, found, promise, said):
    from test_config import INFO
    from test_config import write as write_config

    from compressgate.project import config
    from compressgate.workflows.init import render

    text = render(name="m", model="m.keras", data="m.npz", info=INFO,
                  recipes=["float", "ptq_int8"], targets=found)
    assert said in text and "agree on top-1 for 99.0% of 100 test rows" in text
    spec = config.load(write_config(tmp_path, text)).specs["m"]
    assert spec.recipe_overrides.get("ptq_int8", {}).get("promise") == promise
    if promise is not None:  # the override carries the measured reason, and holds
        assert "measured by compressgate init" in spec.recipe_overrides["ptq_int8"]["why"]
        judged = {**TARGET_ROW, "tflm_loads": found["tflm_loads"],
                  "tflm_error": found["tflm_error"], "tflm_max_quanta": found["tflm_max_quanta"]}
        recipe = spec.recipe(get_recipe("ptq_int8"))
        judged["targets"] = list(declared_targets(recipe))
        assert not targets_rules.check_targets(ResultRow.from_dict(judged), recipe.promise,
                                       {ARENA: 10_000}, Tolerances()).failed


def test_a_broken_target_promise_prints_the_override_that_accepts_it(make):
    row = {**TARGET_ROW, "tflm_loads": False, "tflm_error": "op TOPK_V2 is not in TFLM's "
           "op resolver", ARENA: None}
    outcome = make(row=row).run_check("m", "ptq_int8", "targets")
    assert outcome.failed and outcome.accept["promise"] == {"targets": []}
    assert '{"promise": {"targets": []}' in outcome.message()  # a JSON config here
    quanta = make(row={**TARGET_ROW, "tflm_max_quanta": 3}).run_check("m", "ptq_int8",
                                                                       "targets")
    assert quanta.accept["promise"] == {"max_tflm_quanta": 3}
