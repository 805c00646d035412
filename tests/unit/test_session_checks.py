"""The latency, targets and baseline checks of a gate session, and what it gates, on the
stand-in runner (``tests/standin.py``): the rows at more threads, the note on where the
time goes, which shard gates which case, the figures each update mode writes and the build
a rewritten baseline names. No TF."""

import hashlib
import json

import pytest
import standin
from standin import R, Runner, make_row, pairs

from compressgate.errors import UserInputError
from compressgate.gate import baselines as bl
from compressgate.gate import shards
from compressgate.gate import threads as gate_threads
from compressgate.gate.records import Row, Status, Verdict
from compressgate.gate.session import Case, GateSession, Settings
from compressgate.measure.stats import LatencyPairs
from compressgate.measure.threads import ThreadRun

ARENA = bl.ARENA_FIGURE
HINT = "tox -e gate -- --compressgate-update=missing"
TARGETS = {"targets": ["tflm"], "kernel_agreement": 1.0, "kernel_max_quanta": 0,
           "tflm_loads": True, "tflm_error": None, "tflm_version": "v2",
           "tflm_max_quanta": 0, "tflm_ref_agreement": 1.0, "tflm_max_diff": 0.0,
           "target_rows": 100, ARENA: 10_000}


@pytest.fixture
def project(tmp_path):
    return standin.project(tmp_path)


def path(project, model="n"):
    return project.baselines / model / f"{R}.json"


def stored(project, model="n"):
    return json.loads(path(project, model).read_text())


def record(project, model="n", metrics=None, machine=None, artifact=None, env=None):
    """Write a baseline for ``model``: ``metrics``, this machine class's ``machine``
    figures, the accepted ``artifact``, as recorded by ``env`` (default: this build)."""
    bl.update(path(project, model), model, R,
              bl.Change(metrics or {"converted": True}, machine=machine, artifact=artifact,
                        records_build=True), env or project().env)


def rows(outcome) -> dict[str, Row]:
    return {r.metric: r for r in outcome.verdict.rows}


# -- what to gate -------------------------------------------------------------------------

def test_each_shard_gates_the_cases_dealt_to_it_by_model_and_recipe(project):
    def cases(shard):
        return [(c.model, c.recipe) for c in project(recipes=("float", R),
                                                     shard=shard).cases()]

    # Dealt in (recipe, model) order to the emptiest shard, then the one with fewer of
    # the model's: (m, float) 1, (n, float) 2, (m, ptq_int8) 2, (n, ptq_int8) 1.
    assert cases(shards.Shard(1, 2)) == [("m", "float"), ("n", R)]
    assert cases(shards.Shard(2, 2)) == [("m", R), ("n", "float")]
    assert cases(None) == [("m", "float"), ("m", R), ("n", "float"), ("n", R)]
    assert project(recipes=("float", R), shard=shards.Shard(1, 2)).all_cases() == \
        project(recipes=("float", R)).cases()


def test_a_case_without_boards_has_no_device_check(project):
    assert project(recipes=(R,)).cases()[0] == Case("m", R, None, True, False)


# -- latency ------------------------------------------------------------------------------

def test_a_model_deployed_at_more_threads_gets_their_rows_after_the_update(project):
    project.write(latency_threads=[4])
    runs = (ThreadRun(4, pairs(0.3), 400, 0, 0.0),)
    runner = Runner(threads={("n", R): runs})
    outcome = project(runner, update="all").run_check("n", R, "latency")
    assert outcome.verdict.rows[-2:] == gate_threads.rows(runs)
    assert [r.metric for r in outcome.verdict.rows[-2:]] == ["latency_ratio @4 threads",
                                                             "outputs @4 threads"]
    assert (outcome.verdict.model, outcome.verdict.recipe, outcome.verdict.check) == (
        "n", R, "latency")
    assert outcome.update is not None and outcome.update.reason == "created"
    assert runner.calls.count(("threads", "n", R)) == 1
    # No record is kept per thread count.
    assert not any("threads" in k for k in stored(project)["machines"][project().machine_class])
    # A model timed at one thread only: no thread rows, nothing timed for them.
    other = project(runner).run_check("m", R, "latency")
    assert not any("threads" in r.metric for r in other.verdict.rows)
    assert runner.calls.count(("threads", "m", R)) == 0


def test_outputs_that_differ_at_more_threads_fail_the_latency_check(project):
    project.write(latency_threads=[2, 1])
    runner = Runner(threads={("n", R): (ThreadRun(2, pairs(0.3), 400, 3, 0.01),)})
    record(project, machine={"latency_ratio": 0.5})
    outcome = project(runner).run_check("n", R, "latency")
    assert rows(outcome)["outputs @2 threads"].status == Status.FAIL and outcome.failed
    assert rows(outcome)["latency_ratio"].status == Status.PASS


def test_a_slower_than_float_result_says_where_the_time_goes_even_when_it_passes(project):
    record(project, machine={"latency_ratio": 1.5})
    runner = Runner(ratio={("n", R): 1.5})
    outcome = project(runner).run_check("n", R, "latency")
    assert not outcome.failed
    assert "where the time goes: n x ptq_int8: 2 of 5 ops off XNNPACK" in \
        outcome.verdict.notes
    # As fast as float exactly, or faster: nothing to explain.
    record(project, machine={"latency_ratio": 1.0})
    even = Runner(ratio={("n", R): LatencyPairs((1.0,) * 24, (1.0,) * 24)})
    outcome = project(even).run_check("n", R, "latency")
    assert not outcome.failed and rows(outcome)["latency_ratio"].measured == 1.0
    assert even.count("where_time_goes") == 0


def process_record(project, ratio=0.5):
    """A class record made of five processes, each at ``ratio``."""
    record(project, machine={bl.PROCESS_FIGURE: [ratio] * 5, "latency_ratio": ratio,
                             "latency_ratio_low": ratio, "latency_ratio_high": ratio})


def test_fresh_processes_are_spent_only_beyond_the_tolerance_of_the_envelope(project):
    process_record(project)
    # The top of the envelope is 0.5 x 1.15 = 0.575: half the pairs lie above it.
    within = Runner(ratio={("n", R): 0.5745})
    assert not project(within).run_check("n", R, "latency").failed
    assert within.count("latency_processes") == 0
    beyond = Runner(ratio={("n", R): 0.6})
    outcome = project(beyond).run_check("n", R, "latency")
    assert outcome.failed and beyond.count("latency_processes") > 0
    assert rows(outcome)["latency_ratio"].note.startswith("4 processes ")


def test_a_regression_timed_on_a_busy_machine_is_not_judged_against_processes(project):
    process_record(project)
    busy = pairs(0.7)
    busy = LatencyPairs(busy.reference_ms, busy.candidate_ms, others_running=1.5)
    outcome = project(Runner(ratio={("n", R): busy})).run_check("n", R, "latency")
    row = rows(outcome)["latency_ratio"]
    assert row.status == Status.SKIPPED and not outcome.failed
    assert row.note.startswith("machine busy while timing (1.5 other runnable tasks on "
                               "average): would be a regression (4 processes ")
    assert "(2x the limit); not judged, re-run on a quiet machine" in row.note


def test_fresh_processes_are_timed_only_as_far_as_no_earlier_call_did(project):
    runner = Runner()
    state = project(runner, latency_pairs=12).state
    three = state.latency_runs("n", R, 3)
    assert len(three) == 3
    assert [c for c in runner.calls if c[0] == "latency_processes"] == [
        ("latency_processes", "n", R, 2, 12)]
    assert len(state.latency_runs("n", R, 2)) == 2
    assert len(state.latency_runs("n", R, 3)) == 3
    assert runner.count("latency_processes") == 1
    state.latency_runs("n", R, 4)
    assert runner.calls[-1] == ("latency_processes", "n", R, 1, 12)


# -- targets ------------------------------------------------------------------------------

def targets_runner(**figures):
    return Runner(rows={("n", R): make_row("n", **TARGETS | figures)})


def test_the_targets_check_records_its_own_cases_arena(project):
    outcome = project(targets_runner(), update="all").run_check("n", R, "targets")
    assert (outcome.verdict.model, outcome.verdict.recipe, outcome.verdict.check) == (
        "n", R, "targets")
    assert outcome.update is not None and outcome.update.reason == "created"
    assert stored(project)["metrics"] == {ARENA: 10_000, "tflm_version": "v2"}
    # "all" moves a recorded arena; "none" and "missing" do not.
    project(targets_runner(**{ARENA: 12_000})).run_check("n", R, "targets")
    project(targets_runner(**{ARENA: 12_000}), update="missing").run_check("n", R, "targets")
    assert stored(project)["metrics"][ARENA] == 10_000
    project(targets_runner(**{ARENA: 12_000}), update="all").run_check("n", R, "targets")
    assert stored(project)["metrics"][ARENA] == 12_000


def test_an_arena_not_recorded_yet_is_not_judged_and_says_how_to_record_it(project):
    arena = rows(project(targets_runner()).run_check("n", R, "targets"))[ARENA]
    assert (arena.status, arena.missing) == (Status.SKIPPED, True)
    assert arena.note == f"not judged: no accepted arena figure; record with: {HINT}"


def test_a_models_own_tolerances_judge_its_arena(project):
    record(project, metrics={ARENA: 10_000, "tflm_version": "v2"})
    grown = targets_runner(**{ARENA: 12_000})
    assert rows(project(grown).run_check("n", R, "targets"))[ARENA].status == \
        Status.REGRESSION
    project.write(tolerances={"arena_pct": 50})
    assert rows(project(grown).run_check("n", R, "targets"))[ARENA].status == Status.PASS


def test_no_arena_figure_means_nothing_to_record(project):
    for figures in ({"targets": []}, {ARENA: None}):
        outcome = project(targets_runner(**figures), update="all").run_check(
            "n", R, "targets")
        assert outcome.update is None and not path(project).exists()


def test_a_broken_target_promise_is_offered_for_its_own_case(project):
    broken = targets_runner(tflm_loads=False, tflm_error="op TOPK_V2 is not in TFLM's op "
                            "resolver", **{ARENA: None})
    outcome = project(broken).run_check("n", R, "targets")
    assert outcome.failed
    assert (outcome.accept["model"], outcome.accept["recipe"]) == ("n", R)
    assert outcome.accept["promise"] == {"targets": []}


def test_a_result_that_did_not_convert_or_was_not_measured_fails_the_targets_check(project):
    failed = Runner(rows={("n", R): make_row("n", converted=False, error="boom")})
    assert project(failed).run_check("n", R, "targets").verdict == Verdict(
        "n", R, "targets", (Row("converted", False, True, "-", Status.FAIL, "boom"),))
    died = targets_runner(targets_error="child died")
    assert project(died).run_check("n", R, "targets").verdict == Verdict(
        "n", R, "targets", (Row("target measurement", None, "measured", "-", Status.FAIL,
                                "child died"),))


# -- the baseline check: which build a rewritten record names ------------------------------

def older_build(project):
    return project().env | {"tensorflow": "2.20.0"}


def test_rewriting_a_baseline_records_this_build(project):
    record(project, metrics={"converted": True, "size_bytes": 999}, env=older_build(project))
    project(update="all").run_check("n", R, "baseline")
    assert stored(project)["environment"]["tensorflow"] == "2.21.0"
    record(project, metrics={"converted": True}, env=older_build(project))
    failed = Runner(rows={("n", R): make_row("n", converted=False, error="boom")})
    project(failed, update="all", force=True).run_check("n", R, "baseline")
    assert stored(project)["environment"]["tensorflow"] == "2.21.0"
    assert stored(project)["metrics"] == {"converted": False, "error": "boom"}


def test_missing_mode_adds_no_sha_to_a_record_of_another_build(project):
    runner = Runner()
    project(runner, update="all").run_check("n", R, "baseline")
    doc = stored(project)
    del doc["metrics"][bl.ARTIFACT_FIGURE]
    del doc["inputs"]                               # a figure to add: "missing" acts
    python = doc["environment"]["python"]
    doc["environment"].update(tensorflow="2.20.0", python="3.10.0")
    path(project).write_text(json.dumps(doc))
    artifact = path(project).with_suffix(".tflite")
    artifact.unlink()
    outcome = project(runner, update="missing").run_check("n", R, "baseline")
    assert bl.ARTIFACT_FIGURE not in stored(project)["metrics"]
    assert stored(project)["inputs"] == make_row("n")["inputs"]       # what it lacked
    # Nor is this build's file put beside it as the accepted one: no sha would vouch for it.
    assert not artifact.exists()
    sha = hashlib.sha256(b"TFL3 n").hexdigest()
    assert rows(outcome)[bl.ARTIFACT_FIGURE] == Row(
        bl.ARTIFACT_FIGURE, sha[:12], None, "identical", Status.INFO,
        "no sha256 recorded; it is recorded on the build that recorded this baseline only; "
        f"here python 3.10.0 (now {python}); tensorflow 2.20.0 (now 2.21.0)")
    # Recorded by this build: the sha is added.
    doc["environment"].update(tensorflow="2.21.0", python=python)
    path(project).write_text(json.dumps(doc))
    project(runner, update="missing").run_check("n", R, "baseline")
    assert stored(project)["metrics"][bl.ARTIFACT_FIGURE] == sha


def test_missing_mode_restores_the_file_another_builds_record_names(project):
    project(update="all").run_check("n", R, "baseline")
    artifact = path(project).with_suffix(".tflite")
    artifact.unlink()
    doc = stored(project)
    del doc["inputs"]                               # a figure to add: "missing" acts
    doc["environment"]["tensorflow"] = "2.20.0"
    path(project).write_text(json.dumps(doc))
    project(update="missing").run_check("n", R, "baseline")
    assert artifact.read_bytes() == b"TFL3 n"       # the very bytes its sha256 records
    assert stored(project)["inputs"] == make_row("n")["inputs"]
    assert stored(project)["environment"]["tensorflow"] == "2.20.0"


def test_missing_mode_keeps_a_recorded_failed_conversion(project):
    failed = Runner(rows={("n", R): make_row("n", converted=False, error="old")})
    project(failed, update="all", force=True).run_check("n", R, "baseline")
    outcome = project(update="missing").run_check("n", R, "baseline")
    assert rows(outcome)["converted"].status == Status.IMPROVED
    assert stored(project)["metrics"] == {"converted": False, "error": "old"}


def test_the_file_beside_a_failed_conversions_record_is_not_measured(project):
    failed = Runner(rows={("n", R): make_row("n", converted=False, error="old")})
    project(failed, update="all", force=True).run_check("n", R, "baseline")
    path(project).with_suffix(".tflite").write_bytes(b"TFL3 n, by hand")
    runner = Runner()
    outcome = project(runner).run_check("n", R, "baseline")
    assert outcome.verdict.rows == (Row("converted", True, False, "-", Status.IMPROVED, "old"),)
    assert runner.count("side_by_side") == 0


def test_a_baseline_records_the_size_ratios_the_reports_show(project):
    project(update="all").run_check("n", R, "baseline")
    metrics = stored(project)["metrics"]
    assert (metrics["size_ratio"], metrics["gzip_ratio"]) == (4.0, 4.1)


# -- sources, checked before any check runs -----------------------------------------------

def sources(tmp_path, entries: dict, **settings) -> GateSession:
    config = tmp_path / "project.json"
    config.write_text(json.dumps({"models": entries}))
    return GateSession(Settings(config=config, **settings))


def test_only_the_selected_models_sources_are_checked(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.npz").write_bytes(b"x")
    models = {"m": {"model": "m.keras", "data": "m.npz"},
              "gone": {"model": "gone.keras", "data": "m.npz"}}
    sources(tmp_path, models, models=("m",)).check_sources()
    with pytest.raises(UserInputError, match=r"^model 'gone': model .*gone\.keras: file not found"):
        sources(tmp_path, models).check_sources()


def test_a_missing_custom_objects_file_names_its_key(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.npz").write_bytes(b"x")
    session = sources(tmp_path, {"m": {"model": "m.keras", "data": "m.npz",
                                       "custom_objects": "layers.py"}})
    with pytest.raises(UserInputError) as info:
        session.check_sources()
    config = tmp_path / "project.json"
    assert str(info.value) == (f"model 'm': custom_objects {tmp_path / 'layers.py'}: file not "
                               f"found (set models.m.custom_objects in {config})")


def test_a_missing_candidate_names_the_file_that_declares_it(tmp_path):
    included = tmp_path / "models" / "manifest.json"
    included.parent.mkdir()
    for name in ("m.keras", "m.npz"):
        (included.parent / name).write_bytes(b"x")
    included.write_text(json.dumps({"models": {"m": {
        "model": "m.keras", "data": "m.npz", "candidates": {"pt2e": {"file": "pt2e.tflite"}}}}}))
    config = tmp_path / "project.json"
    config.write_text(json.dumps({"include": ["models/manifest.json"]}))
    session = GateSession(Settings(config=config))
    with pytest.raises(UserInputError) as info:
        session.check_sources()
    assert str(info.value) == (
        f"model 'm', candidate pt2e: file {included.parent / 'pt2e.tflite'} not found "
        f"(set models.m.candidates.pt2e in {included})")
    (included.parent / "pt2e.tflite").write_bytes(b"TFL3")
    session.check_sources()


def test_a_memory_record_with_no_memory_measured_now_fails_saying_so(project):
    measured = Runner(rows={("n", R): make_row("n", peak_memory_bytes=1_000_000)})
    project(measured, update="all").run_check("n", R, "baseline")
    unmeasured = Runner()                           # this run measured no memory at all
    assert unmeasured.row("n", R).memory is None
    memory = rows(project(unmeasured).run_check("n", R, "baseline"))[bl.MEMORY_FIGURE]
    assert (memory.measured, memory.expected, memory.status, memory.note) == (
        None, 1_000_000, Status.FAIL, "not measured")
