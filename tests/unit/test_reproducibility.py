"""The tflite_sha256 row of the baseline check: pure rule and the session's update flow."""

import json

from compressgate.recipes import get_recipe
from compressgate.reproducibility import METRIC, check_row
from compressgate.session import GateSession, Settings

ENV = {"tensorflow": "2.21.0", "python": "3.11.7", "cpu": "AMD EPYC"}
SHA = "a" * 64
HINT = "pytest --compressgate-update=missing"


def row(sha=SHA, cached=False):
    return {METRIC: sha, "cached": cached}


def test_identical_bytes_pass_and_say_whether_this_run_converted():
    fresh = check_row(row(), {METRIC: SHA}, ENV, ENV, HINT)
    assert (fresh.status, fresh.note) == ("pass", "converted in this run")
    cached = check_row(row(cached=True), {METRIC: SHA}, ENV, ENV, HINT)
    assert (cached.status, cached.note) == ("pass",
                                            "from the result cache, not converted in this run")


def test_different_bytes_under_the_same_versions_are_a_regression():
    verdict = check_row(row("b" * 64), {METRIC: SHA}, ENV, ENV, HINT)
    assert verdict.status == "regression"
    assert (verdict.measured, verdict.expected) == ("b" * 12, "a" * 12)


def test_other_versions_or_cpu_skip_the_comparison_and_name_what_moved():
    then = ENV | {"tensorflow": "2.20.0", "cpu": "Intel Xeon"}
    verdict = check_row(row("b" * 64), {METRIC: SHA}, ENV, then, HINT)
    assert verdict.status == "skipped"
    assert verdict.note == "baseline recorded with other cpu, tensorflow"


def test_an_old_baseline_without_the_sha_fails_clearly():
    verdict = check_row(row(), {}, ENV, ENV, HINT)
    assert verdict.status == "regression"
    assert verdict.note == f"no baseline for {METRIC}; create it with: {HINT}"


class _Backend:
    @staticmethod
    def versions():
        return {"tensorflow": "2.21.0"}


class _Runner:
    backend = _Backend()

    def __init__(self, row):
        self._row = row

    def precompute(self, plan, jobs):
        pass

    def row(self, model, recipe):
        return dict(self._row)

    def recipe(self, model, name):
        return get_recipe(name)


ROW = {"model": "m", "recipe": "ptq_int8", "converted": True, "error": None, "cached": False,
       "accuracy": 0.97, "float_accuracy": 0.975, "accuracy_drop_pts": 0.5,
       "size_bytes": 1000, "size_ratio": 4.0,
       "gzip_bytes": 900, "gzip_ratio": 4.1, "sparsity": 0.0, "input_dtype": "int8",
       "output_dtype": "int8", "float_ops": [], METRIC: SHA}


def _session(tmp_path, update="none", sha=SHA):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir(exist_ok=True)
    (fixtures / "manifest.json").write_text(json.dumps(
        {"schema": 1, "models": {"m": {"model": "m.keras", "data": "m.npz"}}}))
    settings = Settings(baselines=tmp_path / "baselines", fixtures=fixtures, reports=None,
                        recipes=("ptq_int8",), update=update)
    return GateSession(settings, runner=_Runner(ROW | {METRIC: sha}))


def test_the_sha_is_recorded_checked_and_an_old_baseline_is_completed_by_update_missing(
        tmp_path):
    assert not _session(tmp_path, "missing").run_check("m", "ptq_int8", "baseline").failed
    path = tmp_path / "baselines" / "m" / "ptq_int8.json"
    doc = json.loads(path.read_text())
    assert doc["metrics"][METRIC] == SHA
    assert not _session(tmp_path).run_check("m", "ptq_int8", "baseline").failed
    changed = _session(tmp_path, sha="c" * 64).run_check("m", "ptq_int8", "baseline")
    assert changed.failed and "different .tflite" in changed.message()
    # A baseline from before this field: fails clearly, and update=missing adds it.
    del doc["metrics"][METRIC]
    path.write_text(json.dumps(doc))
    old = _session(tmp_path).run_check("m", "ptq_int8", "baseline")
    assert old.failed and f"no baseline for {METRIC}" in old.message()
    assert not _session(tmp_path, "missing").run_check("m", "ptq_int8", "baseline").failed
    assert json.loads(path.read_text())["metrics"][METRIC] == SHA
