"""The project config: one format for users' models and the bundled fixtures."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressgate.errors import UserInputError
from compressgate.gate.session import GateSession, Settings
from compressgate.project import config
from compressgate.project.metrics import Metric
from compressgate.workflows.init import render


def write(tmp_path, text, name="compressgate.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MODEL = '[models.m]\nmodel = "m.keras"\ndata = "m.npz"\n'


def error(tmp_path, text, name="compressgate.toml") -> str:
    with pytest.raises(UserInputError) as info:
        config.load(write(tmp_path, text, name))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_latency_threads_always_time_one_thread_and_each_count_once(tmp_path):
    write(tmp_path, MODEL + "latency_threads = [4, 2, 4]\n")
    assert config.load(directory=tmp_path).specs["m"].latency_threads == (1, 2, 4)
    write(tmp_path, MODEL)
    assert config.load(directory=tmp_path).specs["m"].latency_threads == (1,)


def test_compressgate_toml_is_found_and_paths_resolve_against_it(tmp_path):
    write(tmp_path, MODEL + 'recipes = "float, ptq_int8"\n')
    project = config.load(directory=tmp_path)
    spec = project.specs["m"]
    assert spec.model_path == tmp_path / "m.keras" and spec.data_path == tmp_path / "m.npz"
    assert spec.recipes == ("float", "ptq_int8") and spec.metric.is_accuracy
    assert project.baselines == tmp_path / "baselines"


def test_pyproject_table_and_includes_share_one_format(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", json.dumps({"models": {"j": {"model": "j.keras", "data": "j.npz",
                                                        "about": {"params": 3}}}}), "more.json")
    write(tmp_path, '[tool.compressgate]\ninclude = ["sub/more.json"]\nreports = "out"\n',
          "pyproject.toml")
    project = config.load(tmp_path)
    assert project.specs["j"].model_path == tmp_path / "sub" / "j.keras"
    assert project.reports == tmp_path / "out"


def test_the_bundled_fixtures_load_through_the_same_path(fixtures_dir):
    specs = config.load(fixtures_dir.parent).specs
    assert set(specs) == {"digits_cnn", "digits_dscnn", "seq_rnn", "tabular_mlp"}
    assert specs["seq_rnn"].static_batch == 1


@pytest.mark.parametrize(("text", "expected"), [
    ('baseline = "x"\n', "compressgate.toml: baseline: Extra inputs are not permitted"),
    ("[models.m]\nmodel = 'm.keras'\n", "models.m.data: Field required"),
    (MODEL + "static_batch = 0\n", "models.m.static_batch: Input should be greater than or "
                                    "equal to 1, got 0"),
    (MODEL + "metrik = 'mae'\n", "models.m.metrik: Extra inputs are not permitted"),
    (MODEL + "latency_threads = [1, 0]\n", "models.m.latency_threads.1: Input should be "
                                          "greater than or equal to 1, got 0"),
    (MODEL + "metric = 'mae'\n", "models.m.metric: metric 'mae' needs max_loss"),
    (MODEL + "metric = { function = 'pkg.mod:score', max_loss = 1 }\n",
     "custom metric 'pkg.mod:score' needs higher_is_better"),
    (MODEL + "metric = 'f1'\n", "metric 'f1' is neither a builtin"),
    (MODEL + "recipes = ['ptq_int3']\n", "models.m: unknown recipe 'ptq_int3'"),
    (MODEL + "[models.m.recipe_overrides.ptq_int8]\nfinetune = { epochs = 0 }\n",
     "models.m: recipe field finetune.epochs: expected an integer >= 1, got 0"),
    ("[tolerances]\nsize_pct = 'big'\n", "tolerances.size_pct: Input should be a valid number"),
    ("[tolerances]\nsize_percent = 1\n", "tolerances.size_percent: Unexpected keyword argument"),
    ('include = ["nope.json"]\n', "include 'nope.json': file not found"),
    ("models = [", "invalid TOML"),
])
def test_bad_config_is_one_line_naming_the_field(tmp_path, text, expected):
    message = error(tmp_path, text)
    assert expected in message and str(tmp_path / "compressgate.toml") in message


def test_an_include_cycle_and_a_duplicate_model_are_named(tmp_path):
    write(tmp_path, json.dumps({"include": ["a.json"]}), "a.json")
    assert "includes itself" in error(tmp_path, 'include = ["a.json"]\n')
    write(tmp_path, json.dumps({"models": {"m": {"model": "x", "data": "y"}}}), "b.json")
    assert "model 'm' is defined twice" in error(tmp_path, 'include = ["b.json"]\n' + MODEL)


def test_cases_follow_cli_then_model_then_project_recipes(tmp_path):
    write(tmp_path, 'recipes = ["float", "ptq_dynamic"]\n' + MODEL + "[models.n]\n"
          'model = "n.keras"\ndata = "n.npz"\nrecipes = ["ptq_int8"]\n')
    session = GateSession(Settings(config=tmp_path, reports=None))
    assert [(c.model, c.recipe) for c in session.cases()] == [
        ("m", "float"), ("m", "ptq_dynamic"), ("n", "ptq_int8")]
    session = GateSession(Settings(config=tmp_path, reports=None, recipes=("prune",)))
    assert {c.recipe for c in session.cases()} == {"prune"}


def test_a_model_may_carry_its_own_tolerances(tmp_path):
    write(tmp_path, "[tolerances]\nsize_pct = 2.0\n" + MODEL + "[models.m.tolerances]\n"
          "latency_pct = 30\n[models.n]\nmodel = 'n.keras'\ndata = 'n.npz'\n")
    session = GateSession(Settings(config=tmp_path, reports=None,
                                   tolerances=config.load(tmp_path).config.tolerances))
    assert session.tolerances("m").latency_pct == 30 and session.tolerances("m").size_pct == 1
    assert session.tolerances("n").size_pct == 2 and session.tolerances("n").latency_pct == 15


def test_gate_settings_take_the_project_config_with_the_command_line_over_it(tmp_path):
    write(tmp_path, 'command = "tox -e gate --"\nlatency_pairs = 12\nstrict = true\n'
          'latency = false\nreports = "out"\n[tolerances]\nsize_pct = 2.0\n' + MODEL)
    settings = Settings.from_project(config.load(tmp_path), strict=False)
    assert (settings.command, settings.latency_pairs, settings.strict, settings.latency) \
        == ("tox -e gate --", 12, False, False)
    assert (settings.reports, settings.baselines) == (tmp_path / "out", tmp_path / "baselines")
    assert settings.tolerances.size_pct == 2.0


def test_worker_processes_from_the_environment_then_the_config_then_the_cores(
        tmp_path, monkeypatch):
    monkeypatch.delenv(config.JOBS_ENV, raising=False)
    monkeypatch.setattr(config.os, "cpu_count", lambda: 6)
    assert config.load(directory=tmp_path).jobs == 6
    write(tmp_path, "jobs = 3\n" + MODEL)
    assert config.load(tmp_path).jobs == 3
    monkeypatch.setenv(config.JOBS_ENV, "1")  # e.g. a run inside one pytest-xdist worker
    assert config.load(tmp_path).jobs == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(config.JOBS_ENV, bad)
        with pytest.raises(UserInputError, match=rf"^\$COMPRESSGATE_JOBS: expected a whole "
                                                 rf"number .* got '{bad}'$"):
            _ = config.load(tmp_path).jobs


def test_gate_settings_default_to_what_a_project_without_a_config_sets(tmp_path):
    assert Settings() == Settings.from_project(config.load(directory=tmp_path),
                                               baselines=Path("baselines"),
                                               reports=Path("reports"))


def test_custom_metric_is_imported_from_the_config_directory(tmp_path):
    (tmp_path / "scoring.py").write_text(
        "import numpy as np\n"
        "def within_half(y, out):\n"
        "    return float(np.mean(np.abs(out.ravel() - y) < 0.5))\n")
    write(tmp_path, MODEL + "metric = { function = 'scoring:within_half', "
          "higher_is_better = true, max_loss = 0.05 }\n")
    metric = config.load(tmp_path).specs["m"].metric
    assert metric.name == "within_half" and metric.tolerance == pytest.approx(0.0125)
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert metric.score(y, np.array([[1.1], [2.0], [3.9], [4.2]])) == 0.75
    assert metric.loss(0.75, 0.5) == pytest.approx(0.25)  # higher is better: a loss


def test_builtin_metrics_and_their_direction():
    mae = Metric.build("mae", higher_is_better=None, max_loss=0.1, tolerance=None,
                       root=".", where="x")
    assert not mae.higher_is_better
    assert mae.score(np.array([1.0, 3.0]), np.array([[2.0], [3.0]])) == 0.5
    assert mae.loss(0.5, 0.7) == pytest.approx(0.2)
    accuracy = Metric()
    assert accuracy.score(np.array([1, 0]), np.array([[0.1, 0.9], [0.2, 0.8]])) == 0.5
    assert accuracy.loss(0.9, 0.85) == pytest.approx(5.0)  # points
    with pytest.raises(UserInputError, match="is lower is better; remove higher_is_better"):
        Metric.build("mse", higher_is_better=True, max_loss=1, tolerance=None, root=".",
                     where="x")


def test_a_missing_metric_module_is_named(tmp_path):
    metric = Metric.build("nomodule:f", higher_is_better=True, max_loss=1, tolerance=None,
                          root=tmp_path, where="x")
    with pytest.raises(UserInputError, match=r"^nomodule:f: cannot import module 'nomodule'"):
        metric.score(np.zeros(2), np.zeros((2, 1)))


INFO = {"input_shape": [None, 13], "output_units": 3, "params": 70403,
        "layers": [{"name": "dense", "class": "Dense", "params": 3584}] * 5,
        "qat_error": "Layer layer_normalization:<class LayerNormalization> is not supported",
        "recurrent": [], "compiled": True}


def test_init_renders_a_valid_commented_config(tmp_path):
    text = render(name="wine", model="model.keras", data="data.npz", info=INFO)
    assert "# input Nx13, 3 output units, 70,403 parameters, 5 layers" in text
    assert "# left out: qat_int8: tfmot cannot quantize-aware train this model: Layer " \
           "layer_normalization" in text
    path = write(tmp_path, text)
    spec = config.load(path).specs["wine"]
    assert "qat_int8" not in spec.recipes and "ptq_int8" in spec.recipes


def test_init_scores_a_regressor_by_mae_and_pins_recurrent_batches(tmp_path):
    info = {**INFO, "output_units": 1, "qat_error": None, "recurrent": ["lstm"], "lstm": True,
            "compiled": False}
    text = render(name="r", model="r.keras", data="r.npz", info=info,
                  recipes=["float", "ptq_int8", "ptq_int16x8"], regression_max_loss=0.07)
    spec = config.load(write(tmp_path, text)).specs["r"]
    assert spec.metric.function == "mae" and spec.metric.max_loss == 0.07
    assert spec.static_batch == 1 and spec.recipes == ("float", "ptq_int8")
    assert "need the model saved compiled" in text


_TEXT = st.text(string.ascii_letters + string.digits + "_ .-=[]{}\"',:#\n", max_size=120)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_TEXT, st.builds(lambda extra: MODEL + extra, _TEXT)))
def test_fuzzed_config_loads_or_fails_with_one_line(tmp_path, body):
    path = tmp_path / "fuzz.toml"
    path.write_text(body)
    try:
        config.load(path)
    except UserInputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
