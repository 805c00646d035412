"""A team's first run: promises that fail say how to accept them, config values of the
wrong type and missing files are one line, and the plugin's count agrees with pytest's.
No TensorFlow."""

from __future__ import annotations

import json
import tomllib

import pytest
from test_session import ROW, FakeRunner

from compressgate.errors import UserInputError
from compressgate.gate.accept import accepting_value, override_hint
from compressgate.gate.records import Row, Status, Verdict
from compressgate.gate.session import GateSession, Settings
from compressgate.project import config as project_config
from compressgate.recipes import get_recipe


def _failed(metric, measured, limit, model="model", recipe="ptq_int8"):
    return Verdict(model, recipe, "size", (
        Row(metric, measured, limit, ">= limit", Status.FAIL),))


@pytest.mark.parametrize(("field", "measured", "value"), [
    ("min_size_ratio", 2.0046, 2.0), ("min_size_ratio", 1.589, 1.58),
    ("min_gzip_ratio", 7.999, 7.99), ("max_drop_pts", 5.1, 5.11),
    ("max_drop_pts", 5.137, 5.14), ("max_drop_pts", 0.0, 0.01)])
def test_the_accepting_value_passes_the_measured_figure_and_no_more(field, measured, value):
    got = accepting_value(field, measured)
    assert got == pytest.approx(value)
    if field.startswith("min_"):
        assert measured >= got and measured < got + 0.01
    else:
        assert measured < got and measured >= got - 0.01 - 1e-9


def test_a_failed_size_promise_prints_toml_that_accepts_it(tmp_path):
    config = tmp_path / "compressgate.toml"
    hint = override_hint(_failed("size_ratio", 2.0046, 3.5), config=config,
                         existing={"promise": {"max_drop_pts": 1.0}})
    assert "min_size_ratio 3.5 -> 2.0" in hint and "compressgate.toml" in hint
    body = "\n".join(line.strip() for line in hint.splitlines()[1:])
    parsed = tomllib.loads(body)  # the printed lines are valid TOML, pasted as they are
    override = parsed["models"]["model"]["recipe_overrides"]["ptq_int8"]
    # The user's own promise fields are kept: pasting replaces nothing else.
    assert override["promise"] == {"max_drop_pts": 1.0, "min_size_ratio": 2.0}
    assert override["why"]
    # ... and the config with them validates and gives the recipe the accepted promise.
    config.write_text('[models.model]\nmodel = "m.keras"\ndata = "d.npz"\n' + body + "\n")
    spec = project_config.load(config).specs["model"]
    assert spec.recipe(get_recipe("ptq_int8")).promise.min_size_ratio == 2.0


def test_the_hint_follows_the_file_that_defines_the_model(tmp_path):
    verdict = _failed("accuracy drop (pts)", 5.1, 2.0, model="m", recipe="prune_int8")
    in_pyproject = override_hint(verdict, config=tmp_path / "pyproject.toml")
    assert "[tool.compressgate.models.m.recipe_overrides.prune_int8]" in in_pyproject
    in_json = override_hint(verdict, config=tmp_path / "manifest.json")
    # A member of models.m.recipe_overrides, valid JSON where it is pasted.
    line = in_json.splitlines()[1].strip()
    assert json.loads("{" + line + "}")["prune_int8"]["promise"] == {"max_drop_pts": 5.11}


def test_no_hint_for_rows_that_are_not_promises():
    verdict = Verdict("m", "r", "conversion", (
        Row("input dtype", "float32", "int8", "-", Status.FAIL),
        Row("size_ratio", 4.0, 3.5, ">= limit", Status.PASS)))
    assert override_hint(verdict, config=None) is None


def _session(tmp_path, row, overrides=None):
    config = tmp_path / "compressgate.toml"
    config.write_text('[models.m]\nmodel = "m.keras"\ndata = "m.npz"\n'
                      + (overrides or ""))
    settings = Settings(baselines=tmp_path / "baselines", config=config, reports=None,
                        recipes=("ptq_int8",))
    return GateSession(settings, runner=FakeRunner(row))


def test_a_failing_promise_check_carries_the_hint_and_still_fails(tmp_path):
    session = _session(tmp_path, ROW | {"size_ratio": 2.0046})
    outcome = session.run_check("m", "ptq_int8", "size")
    assert outcome.failed
    message = outcome.message()
    assert "[models.m.recipe_overrides.ptq_int8]" in message
    assert "promise = { min_size_ratio = 2.0 }" in message
    passing = _session(tmp_path, ROW).run_check("m", "ptq_int8", "size")
    assert not passing.failed and "recipe_overrides" not in passing.message()


@pytest.mark.parametrize(("override", "field", "expected"), [
    ('promise = { min_size_ratio = "1.4x" }', "promise.min_size_ratio", "a number"),
    ("promise = { faster_than_float = 1 }", "promise.faster_than_float", "true or false"),
    ("finetune = { epochs = 2.5 }", "finetune.epochs", "an integer"),
    ('calibration_samples = "200"', "calibration_samples", "an integer"),
    ('prune = { final_sparsity = "80%" }', "prune.final_sparsity", "a number"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_the_key(tmp_path, override, field,
                                                              expected):
    config = tmp_path / "compressgate.toml"
    config.write_text('[models.m]\nmodel = "m.keras"\ndata = "m.npz"\n'
                      f"[models.m.recipe_overrides.ptq_int8]\n{override}\n")
    with pytest.raises(UserInputError) as info:
        project_config.load(config)
    text = str(info.value)
    assert "\n" not in text and str(config) in text and "models.m" in text
    assert f"recipe field {field}: expected {expected}" in text


def test_numbers_where_numbers_are_due_still_pass():
    recipe = get_recipe("ptq_int8").with_overrides(
        {"promise": {"max_drop_pts": 3, "min_size_ratio": 2}, "calibration_scale": 1})
    assert recipe.promise.max_drop_pts == 3 and recipe.promise.min_size_ratio == 2


def test_a_missing_model_or_data_file_is_named_once(tmp_path):
    session = _session(tmp_path, ROW)
    with pytest.raises(UserInputError, match=r"model 'm': model .*m\.keras: file not found "
                                             r"\(set models\.m\.model in .*compressgate\.toml\)"):
        session.check_sources()
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(UserInputError, match=r"data .*m\.npz: file not found"):
        session.check_sources()
    (tmp_path / "m.npz").write_bytes(b"x")
    session.check_sources()


def test_init_adds_the_ignore_entries_a_project_lacks_once(tmp_path):
    from compressgate.workflows.init import IGNORED, ignore

    gitignore = tmp_path / ".gitignore"
    gitignore.write_text("*.pyc\n.compressgate_cache/")  # no newline at the end
    added = ignore(gitignore)
    assert added == [e for e in IGNORED if e != ".compressgate_cache/"]
    lines = gitignore.read_text().splitlines()
    assert lines[:2] == ["*.pyc", ".compressgate_cache/"]
    assert set(IGNORED) <= set(lines)
    assert ignore(gitignore) == [] and gitignore.read_text().splitlines() == lines
    fresh = tmp_path / "new" / ".gitignore"
    fresh.parent.mkdir()
    assert ignore(fresh) == list(IGNORED)


def test_init_says_what_it_left_out_and_why():
    from compressgate.workflows.init import plan

    info = {"qat_error": "Layer conv1d is not supported", "recurrent": ["lstm"], "lstm": True}
    chosen, left_out = plan(info, ["float", "ptq_int8", "ptq_int16x8", "qat_int8"])
    assert chosen == ["float", "ptq_int8"]
    assert [r.split(":")[0] for r in left_out] == ["qat_int8", "ptq_int16x8"]
    assert "conv1d" in left_out[0]
    assert plan({}, ["float", "qat_int8"]) == (["float", "qat_int8"], [])
    # A GRU converts unrolled at 16x8: only fused LSTM kernels lack it.
    gru = {"recurrent": ["bidirectional (GRU)"], "lstm": False}
    assert plan(gru, ["float", "ptq_int16x8"]) == (["float", "ptq_int16x8"], [])


def test_run_details_give_versions_machine_and_commit(tmp_path):
    from compressgate.report import view
    from compressgate.report.gate_run import run_facts

    facts = run_facts()
    details = dict(view.run_details(facts))
    for package in ("compressgate", "tensorflow", "ai-edge-litert", "python"):
        assert details[f"versions.{package}"] not in ("", "not installed")
    assert details["machine_class"] and details["machine.arch"]
    assert len(details.get("commit", "x" * 12)) == 12


def test_one_paste_accepts_every_broken_promise_of_the_run(tmp_path):
    from compressgate.gate.records import CheckRecord
    from compressgate.report.gate_run import summary_lines

    config = tmp_path / "compressgate.toml"
    config.write_text('[models.m]\nmodel = "m.keras"\ndata = "m.npz"\n'
                      "[models.m.recipe_overrides.ptq_int8]\n"
                      "promise = { min_gzip_ratio = 1.0 }\n")
    settings = Settings(baselines=tmp_path / "baselines", config=config, reports=None,
                        recipes=("ptq_int8", "ptq_dynamic"))
    session = GateSession(settings, runner=FakeRunner(
        ROW | {"size_ratio": 2.0046, "accuracy_drop_pts": 2.5}))
    records = [session.run_check("m", r, c).record()
               for r in ("ptq_int8", "ptq_dynamic") for c in ("size", "accuracy")]
    records = [CheckRecord.from_dict(json.loads(json.dumps(r.to_dict()))) for r in records]
    lines = summary_lines(records, [])
    start = next(i for i, line in enumerate(lines) if line.startswith("To accept every"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    parsed = tomllib.loads("\n".join(body))["models"]["m"]["recipe_overrides"]
    # Both checks of a recipe in one table, the user's own promise fields kept; each
    # recipe gets its own table.
    assert parsed["ptq_int8"]["promise"] == {"min_gzip_ratio": 1.0, "max_drop_pts": 2.51,
                                             "min_size_ratio": 2.0}
    assert parsed["ptq_dynamic"]["promise"] == {"max_drop_pts": 2.51, "min_size_ratio": 2.0}
    # Pasted under the model's table, the config validates and every promise is met.
    config.write_text('[models.m]\nmodel = "m.keras"\ndata = "m.npz"\n' + "\n".join(body))
    spec = project_config.load(config).specs["m"]
    for recipe in ("ptq_int8", "ptq_dynamic"):
        promise = spec.recipe(get_recipe(recipe)).promise
        assert promise.min_size_ratio <= 2.0046 and promise.max_drop_pts > 2.5


def test_native_noise_is_dropped_and_the_rest_passed_on(capfd):
    import os
    import re

    from compressgate.native import filtered_stderr

    with filtered_stderr(re.compile(r"^INFO: .*")):
        os.write(2, b"INFO: Created a delegate\nE real trouble\n\nINFO: again\n")
    assert capfd.readouterr().err == "E real trouble\n"


def test_accepting_a_file_larger_than_float_says_so_in_a_comment(tmp_path):
    hint = override_hint(_failed("size_ratio", 0.0495, 3.5), config=tmp_path / "x.toml")
    body = "\n".join(line.strip() for line in hint.splitlines()[1:])
    assert "# min_size_ratio 0.04: this recipe's file is larger than the float model's" in body
    assert tomllib.loads(body)["models"]["model"]["recipe_overrides"]["ptq_int8"][
        "promise"] == {"min_size_ratio": 0.04}
    assert "larger than" not in override_hint(_failed("size_ratio", 1.7, 3.5), config=None)
