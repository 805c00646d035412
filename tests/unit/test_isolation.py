"""Worker processes that crash or hang fail their own task only (no TensorFlow)."""

import os
from functools import partial
from pathlib import Path

import pytest

from compressgate import Recipe
from compressgate.backends.faults import FaultyBackend, trigger
from compressgate.errors import UserInputError
from compressgate.gate import rules
from compressgate.pipeline import isolation
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config


def test_crash_abort_and_hang_fail_alone_and_the_healthy_tasks_finish(monkeypatch):
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "3")
    with isolation.Workers(2) as workers:
        futures = [workers.submit(trigger, "segfault"), workers.submit(abs, -1),
                   workers.submit(trigger, "abort"), workers.submit(trigger, "hang"),
                   workers.submit(abs, -2)]
        outcomes = [workers.outcome(f) for f in futures]
    assert outcomes == [(None, f"worker crashed: signal SIGSEGV; {isolation.NATIVE_HINT}"),
                        (1, None), (None, ABORTED), (None, "timed out after 3 s"), (2, None)]


ABORTED = ("worker crashed: signal SIGABRT; its stderr ended: munmap_chunk(): invalid "
           f"pointer; {isolation.NATIVE_HINT}")


def _noisy_then(code: int) -> None:
    """Write more lines to fd 2 than a crash line keeps, then exit with ``code``."""
    for i in range(6):
        os.write(2, f"native line {i}\n".encode())
    os._exit(code)


def test_a_crash_keeps_only_the_crashing_tasks_last_stderr_lines():
    with isolation.Workers(1) as workers:
        assert workers.run(_write_fd2, b"an earlier task's noise\n") == (None, None)
        _, line = workers.run(_noisy_then, 3)
    # Only this task's lines (the earlier task's are gone), the last TAIL_LINES of them;
    # an exit code is no native crash, so no oneDNN hint.
    assert line == ("worker crashed: exit code 3; its stderr ended: native line 2 / "
                    "native line 3 / native line 4 / native line 5")


def _write_fd2(text: bytes) -> None:
    os.write(2, text)


def test_a_silent_crash_says_only_what_killed_it():
    assert isolation.crash_line(-11, []) == (
        f"worker crashed: signal SIGSEGV; {isolation.NATIVE_HINT}")
    assert isolation.crash_line(-99, []).startswith("worker crashed: signal 99; ")


def test_an_error_raised_by_the_task_reaches_the_caller():
    with isolation.Workers(1) as workers, pytest.raises(ValueError, match="unknown fault"):
        workers.run(trigger, "melt")


@pytest.mark.parametrize("text", ["soon", "0", "-5", "nan"])
def test_bad_timeout_setting_is_one_line_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(isolation.TIMEOUT_ENV, text)
    with pytest.raises(UserInputError) as info:
        isolation.conversion_timeout()
    assert str(info.value) == (f"$COMPRESSGATE_CONVERSION_TIMEOUT: expected a number of "
                               f"seconds > 0, got {text!r}")


def test_timeout_default_and_override(monkeypatch):
    monkeypatch.delenv(isolation.TIMEOUT_ENV, raising=False)
    assert isolation.conversion_timeout() == 1800
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "90.5")
    assert isolation.conversion_timeout() == 90.5


# --- through the Runner: planted faults, a canned .tflite for the healthy cases -------

MODEL = "tabular_mlp"
TFLITE = Path(__file__).resolve().parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"
SEGV = Recipe("planted_segfault", quantization="dynamic")
ABORT = Recipe("planted_abort", quantization="dynamic")
HANG = Recipe("planted_hang", quantization="dynamic")


@pytest.fixture
def runner(fixtures_dir, tmp_path):
    specs = {MODEL: config.load(fixtures_dir / "manifest.json").specs[MODEL]}
    faults = {SEGV.name: "segfault", ABORT.name: "abort", HANG.name: "hang"}
    return Runner(specs, ResultCache(tmp_path / "cache"),
                  backend_factory=partial(FaultyBackend, faults, TFLITE))


def cached(runner, recipe):
    return runner.cache.get(runner.cache_key(MODEL, runner.recipe(MODEL, recipe))) is not None


def test_a_segfault_in_a_parallel_worker_fails_that_case_only(runner):
    runner.precompute([(MODEL, "float"), (MODEL, SEGV), (MODEL, "ptq_dynamic")], jobs=2)
    crashed = runner.row(MODEL, SEGV)
    assert crashed.converted is False
    assert crashed.error == f"worker crashed: signal SIGSEGV; {isolation.NATIVE_HINT}"
    verdict = rules.check_conversion(crashed, SEGV.promise)
    assert verdict.failed and verdict.rows[0].note == crashed.error
    for healthy in ("float", "ptq_dynamic"):
        row = runner.row(MODEL, healthy)
        assert row.converted and row.accuracy > 0.9 and row.peak_memory > 0
        assert cached(runner, healthy)
    assert not cached(runner, SEGV)  # a crash may be transient: computed again next run


def test_on_demand_a_hang_times_out_an_abort_crashes_and_the_run_goes_on(runner,
                                                                        monkeypatch):
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "3")
    assert runner.outcome(MODEL, HANG).error == "timed out after 3 s"
    assert runner.outcome(MODEL, ABORT).error == ABORTED
    monkeypatch.delenv(isolation.TIMEOUT_ENV)
    assert runner.outcome(MODEL, "float").converted
    assert not cached(runner, HANG) and not cached(runner, ABORT) and cached(runner, "float")


def test_a_pool_pebble_gave_up_on_is_replaced_and_the_task_runs_again(monkeypatch):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    with isolation.Workers(1) as workers:
        real_submit, calls = workers.submit, []

        def submit(fn, *args):
            calls.append(fn)
            if len(calls) == 1:  # the first task meets a pool that broke under it
                future: Future = Future()
                future.set_exception(BrokenProcessPool("All workers expired"))
                return future
            return real_submit(fn, *args)

        monkeypatch.setattr(workers, "submit", submit)
        broken = workers._pool
        assert workers.run(pow, 2, 5) == (32, None)
        assert len(calls) == 2 and workers._pool is not broken


# --- a native crash in a fine-tune: once more with oneDNN off ------------------------

ONEDNN = Recipe("planted_onednn_crash", quantization="int8", qat=True)
PLAIN_CRASH = Recipe("planted_crash_without_finetune", quantization="dynamic")
ALWAYS = Recipe("planted_crash_in_any_case", quantization="int8", qat=True)


@pytest.fixture
def onednn_runner(fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(isolation.ONEDNN_ENV, raising=False)
    specs = {MODEL: config.load(fixtures_dir / "manifest.json").specs[MODEL]}
    faults = {ONEDNN.name: "segfault_onednn", PLAIN_CRASH.name: "segfault_onednn",
              ALWAYS.name: "segfault"}
    return Runner(specs, ResultCache(tmp_path / "cache"),
                  backend_factory=partial(FaultyBackend, faults, TFLITE))


FALLBACK = ("worker crashed: signal SIGSEGV; computed again in a fresh worker with "
            "TF_ENABLE_ONEDNN_OPTS=0")


def test_a_fine_tune_killed_by_a_signal_runs_again_with_onednn_off(onednn_runner):
    row = onednn_runner.row(MODEL, ONEDNN)
    assert row.converted and row.accuracy > 0.9
    assert row.fallback == FALLBACK and row.to_dict()["fallback"] == FALLBACK
    assert cached(onednn_runner, ONEDNN)  # a result like any other, its note kept
    from compressgate.report.view import _note
    assert _note(row).startswith("oneDNN off: retried after signal SIGSEGV")
    # Only fine-tunes are retried; the crash line stays the failure of anything else.
    plain = onednn_runner.row(MODEL, PLAIN_CRASH)
    assert not plain.converted and plain.error.startswith("worker crashed: signal SIGSEGV")


def test_a_parallel_run_leaves_the_retry_to_the_fresh_worker(onednn_runner):
    onednn_runner.precompute([(MODEL, "float"), (MODEL, ONEDNN)], jobs=2)
    assert onednn_runner.outcome(MODEL, ONEDNN).fallback == FALLBACK


def test_a_retry_is_made_once_and_not_when_onednn_is_already_off(onednn_runner,
                                                                monkeypatch):
    crash = f"worker crashed: signal SIGSEGV; {isolation.NATIVE_HINT}"
    twice = onednn_runner.outcome(MODEL, ALWAYS)
    assert twice.error == f"{crash}; again with TF_ENABLE_ONEDNN_OPTS=0: {crash}"
    assert not cached(onednn_runner, ALWAYS)
    monkeypatch.setenv(isolation.ONEDNN_ENV, "0")
    onednn_runner._results.clear()
    assert onednn_runner.outcome(MODEL, ALWAYS).error == crash


def test_parallel_workers_measure_the_rows_target_figures_ahead(runner, monkeypatch):
    from compressgate.measure import targets

    runner.precompute([(MODEL, "float"), (MODEL, "ptq_dynamic")], jobs=2)
    measured = []
    monkeypatch.setattr(targets, "measure", lambda *a, **k: measured.append(a) or {})
    for recipe in ("float", "ptq_dynamic"):
        row = runner.row(MODEL, recipe)
        assert row.targets.kernel_agreement is not None  # from the workers, via the cache
    assert measured == []  # nothing measured after the conversions


def test_parallel_workers_measure_each_files_peak_memory_ahead(runner, monkeypatch):
    from compressgate.measure import memory

    runner.precompute([(MODEL, "float"), (MODEL, "ptq_dynamic")], jobs=2)
    measured = []
    monkeypatch.setattr(memory, "peak_memory", lambda *a, **k: measured.append(a) or (1, None))
    for recipe in ("float", "ptq_dynamic"):
        figures = runner.memory(runner.outcome(MODEL, recipe))
        assert figures.error is None and figures.peak_bytes > 1  # a child's real peak
    assert measured == []  # nothing measured after the conversions
