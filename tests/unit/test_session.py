"""Update modes and baseline checks of GateSession, on a stand-in runner (no TF)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from compressgate.recipes import get_recipe
from compressgate.session import GateSession, Settings
from compressgate.stats import LatencyPairs

ROW = {
    "model": "m", "recipe": "ptq_int8", "converted": True, "error": None,
    "accuracy": 0.97, "float_accuracy": 0.975, "accuracy_drop_pts": 0.5,
    "size_bytes": 1000, "float_size_bytes": 4000, "size_ratio": 4.0, "gzip_bytes": 900,
    "float_gzip_bytes": 3700, "gzip_ratio": 4.1, "sparsity": 0.0, "input_dtype": "int8",
    "output_dtype": "int8", "float_ops": [],
}


class FakeBackend:
    @staticmethod
    def versions():
        return {"tensorflow": "2.21.0"}


class FakeRunner:
    backend = FakeBackend()

    def __init__(self, row, ratio=0.5):
        self._row, self.ratio = row, ratio

    def precompute(self, plan, jobs):
        pass

    def row(self, model, recipe):
        return dict(self._row)

    def recipe(self, model, name):
        return get_recipe(name)

    def latency(self, model, recipe, pairs=41):
        rng = np.random.default_rng(0)
        ref = 1 + rng.uniform(0, 0.2, pairs)
        return LatencyPairs(tuple(ref), tuple(ref * self.ratio))


@pytest.fixture
def make(tmp_path):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "manifest.json").write_text(json.dumps(
        {"models": {"m": {"model": "m.keras", "data": "m.npz"}}}))

    def session(update="none", row=ROW, ratio=0.5, force=False):
        settings = Settings(baselines=tmp_path / "baselines", config=fixtures / "manifest.json",
                            reports=None,
                            recipes=("ptq_int8",), update=update, force=force)
        return GateSession(settings, runner=FakeRunner(row, ratio))

    session.baselines = tmp_path / "baselines"
    return session


def path(make):
    return make.baselines / "m" / "ptq_int8.json"


def run_all(session):
    return {check: session.run_check("m", "ptq_int8", check)
            for check in ("conversion", "accuracy", "size", "baseline", "latency")}


def test_cases_and_ids(make):
    cases = make().cases()
    assert [(c.model, c.recipe, c.checks) for c in cases] == [
        ("m", "ptq_int8", ("conversion", "accuracy", "size", "baseline", "latency"))]


def test_missing_fails_without_update_and_writes_nothing(make):
    outcomes = run_all(make())
    assert outcomes["baseline"].failed and outcomes["latency"].failed
    assert "--compressgate-update=missing" in outcomes["baseline"].message()
    assert not make.baselines.exists()


def test_missing_mode_creates_then_clean_run_passes(make):
    outcomes = run_all(make("missing"))
    assert not any(o.failed for o in outcomes.values())
    assert outcomes["baseline"].update.reason == "created"
    metrics = json.loads(path(make).read_text())["metrics"]
    assert metrics["accuracy"] == 0.97 and metrics["latency_ratio"] == 0.5
    assert not any(o.failed or o.update for o in run_all(make()).values())


def test_regression_fails_and_failed_mode_rewrites_it(make):
    run_all(make("missing"))
    worse = ROW | {"accuracy": 0.95, "accuracy_drop_pts": 2.5 - 1.0}
    outcome = make(row=worse).run_check("m", "ptq_int8", "baseline")
    assert outcome.failed and "accuracy" in outcome.message()
    outcome = make("failed", row=worse).run_check("m", "ptq_int8", "baseline")
    assert not outcome.failed
    assert outcome.update.diff == [("accuracy", "0.97", "0.95", "-2.06 %"),
                                   ("accuracy_drop_pts", "0.5", "1.5", "+200.00 %")]


def test_failed_mode_leaves_passing_baselines_alone(make):
    run_all(make("missing"))
    before = path(make).read_bytes()
    outcomes = run_all(make("failed", row=ROW | {"size_bytes": 1005}))
    assert not any(o.update for o in outcomes.values())
    assert path(make).read_bytes() == before


def test_all_mode_refreshes_a_stale_baseline(make):
    run_all(make("missing"))
    smaller = ROW | {"size_bytes": 800, "size_ratio": 5.0}
    outcome = make(row=smaller).run_check("m", "ptq_int8", "baseline")
    assert not outcome.failed and [r.metric for r in outcome.verdict.stale] == ["size_bytes"]
    outcome = make("all", row=smaller).run_check("m", "ptq_int8", "baseline")
    assert json.loads(path(make).read_text())["metrics"]["size_bytes"] == 800


def test_refuses_to_record_an_absolute_failure_unless_forced(make):
    broken = ROW | {"accuracy_drop_pts": 5.0, "accuracy": 0.92}
    outcome = make("all", row=broken).run_check("m", "ptq_int8", "baseline")
    assert outcome.failed and "refused" in outcome.message()
    assert not path(make).exists()
    outcome = make("all", row=broken, force=True).run_check("m", "ptq_int8", "baseline")
    assert path(make).exists()


def test_latency_regression_and_foreign_cpu(make):
    run_all(make("missing"))
    assert make(ratio=0.9).run_check("m", "ptq_int8", "latency").failed
    doc = json.loads(path(make).read_text())
    doc["metrics"]["latency_cpu"] = "Some Other CPU"
    path(make).write_text(json.dumps(doc))
    outcome = make(ratio=0.9).run_check("m", "ptq_int8", "latency")
    assert not outcome.failed and "another CPU" in outcome.message()


def test_other_versions_are_reported(make):
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    doc["environment"]["tensorflow"] = "2.20.0"
    path(make).write_text(json.dumps(doc))
    message = make().run_check("m", "ptq_int8", "baseline").message()
    assert "tensorflow 2.20.0 (now 2.21.0)" in message


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().update = "all"
    assert replace(Settings(), update="all").update == "all"


def test_unused_baselines_are_found(make):
    run_all(make("missing"))
    stray = make.baselines / "m" / "old_recipe.json"
    stray.write_text("{}")
    other = make.baselines / "gone_model" / "ptq_int8.json"
    other.parent.mkdir()
    other.write_text("{}")
    session = make()
    session.settings = replace(session.settings, recipes=())
    assert session.unused_baselines() == [other, stray]
    assert make().unused_baselines() == []  # a recipe selection: cannot tell


def test_the_tflite_sha256_is_recorded_checked_and_added_to_old_baselines(make):
    from compressgate.reproducibility import METRIC

    sha = "a" * 64
    row = ROW | {"cached": False, METRIC: sha}
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    doc = json.loads(path(make).read_text())
    assert doc["metrics"][METRIC] == sha
    assert not make(row=row).run_check("m", "ptq_int8", "baseline").failed
    changed = make(row=row | {METRIC: "c" * 64}).run_check("m", "ptq_int8", "baseline")
    assert changed.failed and "different .tflite" in changed.message()
    # A baseline from before this field fails clearly, and update=missing adds it.
    del doc["metrics"][METRIC]
    path(make).write_text(json.dumps(doc))
    old = make(row=row).run_check("m", "ptq_int8", "baseline")
    assert old.failed and f"no baseline for {METRIC}" in old.message()
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    assert json.loads(path(make).read_text())["metrics"][METRIC] == sha


def test_a_declared_nondeterministic_recipe_skips_only_the_sha256_row(make, tmp_path):
    from compressgate.reproducibility import METRIC

    row = ROW | {"cached": False, METRIC: "a" * 64}
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    (tmp_path / "fixtures" / "manifest.json").write_text(json.dumps({"models": {"m": {
        "model": "m.keras", "data": "m.npz",
        "recipe_overrides": {"ptq_int8": {"nondeterministic": "measured two files"}}}}}))
    other = make(row=row | {METRIC: "c" * 64}).run_check("m", "ptq_int8", "baseline")
    assert not other.failed
    sha = next(r for r in other.verdict.rows if r.metric == METRIC)
    assert sha.status == "skipped" and "measured two files" in sha.note
    # The other figures are still gated: a larger file still fails.
    bigger = make(row=row | {METRIC: "c" * 64, "size_bytes": ROW["size_bytes"] * 2})
    assert bigger.run_check("m", "ptq_int8", "baseline").failed
