"""Peak memory: measured in a fresh process, judged one-sided against the baseline, and
an old baseline without it fails clearly until recorded. No TensorFlow."""

import json
from pathlib import Path
from types import SimpleNamespace

from compressgate.gate import baselines, rules
from compressgate.gate.session import GateSession, Settings
from compressgate.measure import memory
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import get_recipe
from compressgate.tolerances import Tolerances

TFLITE = Path(__file__).resolve().parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"
M = baselines.MEMORY_FIGURE


def test_peak_memory_of_a_real_model_is_repeatable():
    data = TFLITE.read_bytes()
    runs = [memory.peak_memory(data) for _ in range(3)]
    assert all(why is None for _, why in runs)
    peaks = [peak for peak, _ in runs]
    # The model's weights and arena are resident at the peak; the process is not.
    assert all(len(data) < peak < 64 * 2**20 for peak in peaks)
    assert max(peaks) - min(peaks) <= Tolerances().memory_allowed(min(peaks))


def test_a_model_litert_refuses_is_reported_not_raised():
    peak, why = memory.peak_memory(b"\x00" * 64)
    assert peak is None
    assert why == ("memory measurement failed: ValueError: The model is not a valid "
                   "Flatbuffer buffer")


def row(**overrides):
    return ResultRow.from_dict({
            "model": "m", "recipe": "r", "converted": True, "accuracy": 0.9, "size_bytes": 10,
            "gzip_bytes": 9, "sparsity": 0.0, "accuracy_drop_pts": 0.5, "size_ratio": 4.0,
            "gzip_ratio": 4.0, "float_accuracy": 0.905, "input_dtype": "int8",
            "output_dtype": "int8", "float_ops": [], M: 1_000_000} | overrides)


BASE = {"accuracy": 0.9, "size_bytes": 10, "gzip_bytes": 9, "sparsity": 0.0, M: 1_000_000}


def memory_row(verdict):
    return next(r for r in verdict.rows if r.metric == M)


def test_more_memory_beyond_tolerance_is_a_regression_less_is_stale():
    tol = Tolerances()
    allowed = 1_000_000 * 0.05 + 128 * 1024
    assert memory_row(rules.check_baseline(row(**{M: 1_000_000 + allowed}), BASE,
                                          tol)).status == "pass"
    worse = rules.check_baseline(row(**{M: 1_000_001 + allowed}), BASE, tol)
    assert memory_row(worse).status == "regression" and worse.failed
    assert [r.metric for r in rules.check_baseline(row(**{M: 800_000}), BASE, tol).stale] == [M]


def test_unmeasured_memory_fails_with_the_reason():
    verdict = rules.check_baseline(row(**{M: None, "memory_error": "memory measurement "
                                         "timed out after 300 s"}), BASE, Tolerances())
    assert memory_row(verdict).status == "fail"
    assert memory_row(verdict).note == "memory measurement timed out after 300 s"


class FakeRunner:
    class backend:
        @staticmethod
        def versions():
            return {"tensorflow": "2.21.0"}

    def precompute(self, plan, jobs):
        pass

    def measure_files(self, plan, jobs):
        pass

    def row(self, model, recipe):
        return row(model="m", recipe="ptq_int8", **{M: 2_000_000})

    def recipe(self, model, name):
        return get_recipe(name)

    def outcome(self, model, recipe):
        return SimpleNamespace(tflite=b"TFL3", converted=True)


def session(tmp_path, update):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir(exist_ok=True)
    (fixtures / "manifest.json").write_text(json.dumps(
        {"models": {"m": {"model": "m.keras", "data": "m.npz"}}}))
    settings = Settings(baselines=tmp_path / "baselines", config=fixtures / "manifest.json",
                        reports=None, recipes=("ptq_int8",), update=update, command="cmd")
    return GateSession(settings, runner=FakeRunner())


def test_old_baseline_without_memory_is_not_judged_until_recorded_and_keeps_its_figures(
        tmp_path):
    path = tmp_path / "baselines" / "m" / "ptq_int8.json"
    path.parent.mkdir(parents=True)
    old = {"accuracy": 0.95, "size_bytes": 10, "gzip_bytes": 9, "sparsity": 0.0}
    path.write_text(json.dumps({"schema": 1, "model": "m", "recipe": "ptq_int8",
                                "metrics": old, "environment": {}}))
    outcome = session(tmp_path, "none").run_check("m", "ptq_int8", "baseline")
    assert memory_row(outcome.verdict).status == "skipped"
    assert memory_row(outcome.verdict).note.startswith("no record for machine class ")
    assert memory_row(outcome.verdict).note.endswith(
        "record it with: cmd --compressgate-update=missing")
    recorded = session(tmp_path, "missing").run_check("m", "ptq_int8", "baseline")
    # The accuracy regression (0.95 -> 0.90) still fails: "missing" records memory only.
    assert [r.metric for r in recorded.verdict.regressions] == ["accuracy"]
    doc = json.loads(path.read_text())
    assert doc["metrics"] == old
    assert [figures[M] for figures in doc["machines"].values()] == [2_000_000]
    again = session(tmp_path, "none").run_check("m", "ptq_int8", "baseline")
    assert memory_row(again.verdict).status == "pass"


def test_each_file_is_measured_once_in_as_many_processes_at_a_time_as_jobs(monkeypatch):
    import threading
    import time as clock

    from compressgate.pipeline.runner import Runner as RealRunner

    files = {("m", "float"): b"f" * 64, ("m", "a"): b"a" * 64, ("m", "b"): b"a" * 64,
             ("m", "bad"): None}
    calls, running, most = [], [0], [0]
    lock = threading.Lock()

    def fake_peak(tflite):
        with lock:
            calls.append(tflite)
            running[0] += 1
            most[0] = max(most[0], running[0])
        clock.sleep(0.05)  # long enough for the second thread to start beside it
        with lock:
            running[0] -= 1
        return len(tflite), None

    monkeypatch.setattr(memory, "peak_memory", fake_peak)
    runner = RealRunner({}, cache=SimpleNamespace(get=lambda key: None), isolate=False)
    monkeypatch.setattr(runner, "recipe", lambda m, r: r)
    monkeypatch.setattr(runner, "cache_key", lambda m, r: r)
    monkeypatch.setattr(runner, "outcome", lambda m, r: SimpleNamespace(
        tflite=files[(m, r)], converted=files[(m, r)] is not None))
    runner.measure_files(list(files), jobs=2)
    assert sorted(calls) == [b"a" * 64, b"f" * 64]  # "b" has "a"'s bytes; "bad" no file
    assert most[0] == 2
    assert runner.memory(runner.outcome("m", "b")).peak_bytes == 64
    assert len(calls) == 2  # the row reads the figure measured up front


def test_cached_results_are_measured_again_jobs_at_a_time_before_the_rows(monkeypatch):
    import threading
    import time as clock

    from compressgate.pipeline.runner import Runner as RealRunner

    running, most, lock = [0], [0], threading.Lock()

    def outcome(model, recipe):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        clock.sleep(0.05)
        with lock:
            running[0] -= 1
        return SimpleNamespace(tflite=None, converted=False)

    cached = {"a", "b", "c"}
    runner = RealRunner({}, cache=SimpleNamespace(
        get=lambda key: ({}, b"") if key in cached else None), isolate=False)
    monkeypatch.setattr(runner, "recipe", lambda m, r: r)
    monkeypatch.setattr(runner, "cache_key", lambda m, r: r)
    monkeypatch.setattr(runner, "outcome", outcome)
    runner.measure_files([("m", "a"), ("m", "b"), ("m", "c")], jobs=2)
    assert most[0] == 2
    most[0] = 0
    cached.clear()  # not in the cache: computed one at a time, as the worker allows
    runner.measure_files([("m", "a"), ("m", "b")], jobs=2)
    assert most[0] == 1
