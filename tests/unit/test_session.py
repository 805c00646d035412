"""Update modes and baseline checks of GateSession, on a stand-in runner (no TF)."""

import hashlib
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from compressgate.errors import UserInputError
from compressgate.gate import baselines
from compressgate.gate.session import GateSession, Settings
from compressgate.measure.stats import LatencyPairs, PairedOutcome, SideBySide
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import get_recipe

TFLITE = b"TFL3 accepted file"
ROW = {
    "model": "m", "recipe": "ptq_int8", "converted": True, "error": None,
    "accuracy": 0.97, "float_accuracy": 0.975, "accuracy_drop_pts": 0.5,
    "size_bytes": 1000, "float_size_bytes": 4000, "size_ratio": 4.0, "gzip_bytes": 900,
    "float_gzip_bytes": 3700, "gzip_ratio": 4.1, "sparsity": 0.0, "input_dtype": "int8",
    "output_dtype": "int8", "float_ops": [], "test_rows": 400,
    "inputs": {"model": "m" * 64, "data": "d" * 64, "recipe": "r" * 32},
}


class FakeBackend:
    @staticmethod
    def versions():
        return {"tensorflow": "2.21.0"}


TIME_GOES = "98% of invoke time in the 1 of 4 ops off XNNPACK (UNIDIRECTIONAL_SEQUENCE_LSTM 1)"


class FakeRunner:
    """A runner whose result is ``tflite`` with figures ``row``; the accepted file, run
    side by side, gives ``side`` (identical files give identical outputs)."""

    backend = FakeBackend()

    def __init__(self, row, ratio=0.5, tflite=TFLITE, side=None, side_ratio=1.0):
        self.tflite, self.side, self.side_ratio = tflite, side or {}, side_ratio
        self._row = {"tflite_sha256": hashlib.sha256(tflite).hexdigest(), **row}
        self.ratio, self.fresh = ratio, 0

    def precompute(self, plan, jobs):
        pass

    def measure_files(self, plan, jobs):
        pass

    def row(self, model, recipe):
        return ResultRow.from_dict(self._row)

    def recipe(self, model, name):
        return get_recipe(name)

    def outcome(self, model, recipe):
        return SimpleNamespace(tflite=self.tflite, converted=self._row["converted"])

    def side_by_side(self, model, recipe, accepted):
        if accepted == self.tflite:
            return SideBySide(True, PairedOutcome(400, 0, 0), self._row["accuracy"], 1.0,
                                   0.0)
        fields = {"paired": PairedOutcome(400, 0, 0), "accepted_accuracy": 0.97,
                  "agreement": 1.0, "max_output_diff": 0.0, "accepted_memory": None}
        return SideBySide(False, **(fields | self.side))

    def latency(self, model, recipe, pairs=41):
        return _pairs(self.ratio, pairs)

    def latency_against(self, model, recipe, accepted, pairs=41):
        return _pairs(self.side_ratio, pairs)

    def where_time_goes(self, model, recipe):
        return TIME_GOES

    def latency_processes(self, model, recipe, processes, pairs=41):
        """Fresh processes: ``modes`` in turn if given, else the ratio given at
        construction; one set of pairs each."""
        self.fresh += processes
        modes = getattr(self, "modes", None) or [self.ratio]
        return tuple(_pairs(modes[(self.fresh - processes + i) % len(modes)], pairs)
                     for i in range(processes))


def _pairs(ratio, n):
    rng = np.random.default_rng(0)
    ref = 1 + rng.uniform(0, 0.2, n)
    return LatencyPairs(tuple(ref), tuple(ref * ratio * (1 + rng.uniform(-0.01, 0.01, n))))


@pytest.fixture
def make(tmp_path):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "manifest.json").write_text(json.dumps(
        {"models": {"m": {"model": "m.keras", "data": "m.npz"}}}))

    def session(update="none", row=ROW, ratio=0.5, force=False, **runner):
        settings = Settings(baselines=tmp_path / "baselines", config=fixtures / "manifest.json",
                            reports=None,
                            recipes=("ptq_int8",), update=update, force=force)
        return GateSession(settings, runner=FakeRunner(row, ratio, **runner))

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
        ("m", "ptq_int8", ("conversion", "accuracy", "size", "baseline", "latency", "targets"))]


def test_missing_fails_without_update_and_writes_nothing(make):
    outcomes = run_all(make())
    assert outcomes["baseline"].failed and outcomes["latency"].failed
    assert "--compressgate-update=missing" in outcomes["baseline"].message()
    assert not make.baselines.exists()


def test_missing_mode_creates_then_clean_run_passes(make):
    outcomes = run_all(make("missing"))
    assert not any(o.failed for o in outcomes.values())
    assert outcomes["baseline"].update.reason == "created"
    doc = json.loads(path(make).read_text())
    machine = doc["environment"]["machine"]
    assert doc["metrics"]["accuracy"] == 0.97
    assert doc["machines"][machine]["latency_ratio"] == pytest.approx(0.5, abs=0.01)
    assert path(make).with_suffix(".tflite").read_bytes() == TFLITE
    assert not any(o.failed or o.update for o in run_all(make()).values())


def test_regression_fails_and_failed_mode_rewrites_it(make):
    run_all(make("missing"))
    worse = ROW | {"accuracy": 0.95, "accuracy_drop_pts": 2.5 - 1.0}
    other = {"row": worse, "tflite": b"TFL3 worse", "side": {"paired": PairedOutcome(400, 8, 0)}}
    outcome = make(**other).run_check("m", "ptq_int8", "baseline")
    assert outcome.failed and "accuracy" in outcome.message()
    outcome = make("failed", **other).run_check("m", "ptq_int8", "baseline")
    assert not outcome.failed
    assert [r[0] for r in outcome.update.diff] == ["accuracy", "accuracy_drop_pts",
                                                   "tflite_sha256"]
    assert outcome.update.diff[:2] == [("accuracy", "0.97", "0.95", "-2.00 pts"),
                                       ("accuracy_drop_pts", "0.5", "1.5", "+1.00 pts")]
    assert path(make).with_suffix(".tflite").read_bytes() == b"TFL3 worse"
    assert not make(row=worse, tflite=b"TFL3 worse").run_check("m", "ptq_int8",
                                                               "baseline").failed


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


def test_latency_regression_within_the_machine_class_and_no_record_elsewhere(make):
    run_all(make("missing"))
    slow = make(ratio=0.9).run_check("m", "ptq_int8", "latency")
    assert slow.failed and [r.metric for r in slow.verdict.regressions] == ["latency_ratio"]
    doc = json.loads(path(make).read_text())
    doc["machines"] = {"x86_64 avx2 (another class)": doc["machines"].popitem()[1]}
    path(make).write_text(json.dumps(doc))
    outcome = make(ratio=0.9).run_check("m", "ptq_int8", "latency")
    assert not outcome.failed
    row = next(r for r in outcome.verdict.rows if r.metric == "latency_ratio")
    assert row.status == "skipped" and "no latency record for machine class" in row.note
    assert "--compressgate-update=missing" in row.note
    # update=missing records this class beside the other one and moves nothing else.
    make("missing", ratio=0.9).run_check("m", "ptq_int8", "latency")
    machines = json.loads(path(make).read_text())["machines"]
    assert len(machines) == 2 and "x86_64 avx2 (another class)" in machines


def test_a_slower_artifact_fails_side_by_side_on_any_machine(make):
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    doc["machines"] = {}  # no record for this class: only side by side can see it
    path(make).write_text(json.dumps(doc))
    other = b"TFL3 a new, slower file"
    slow = make(tflite=other, side_ratio=1.4).run_check("m", "ptq_int8", "latency")
    assert slow.failed and [r.metric for r in slow.verdict.regressions] == ["time vs accepted"]
    assert "confirmation" in slow.message()
    same_speed = make(tflite=other, side_ratio=1.02).run_check("m", "ptq_int8", "latency")
    assert not same_speed.failed


def test_a_latency_failure_says_where_the_time_goes(make):
    run_all(make("missing"))
    slow = make(ratio=0.9).run_check("m", "ptq_int8", "latency")
    assert slow.failed and f"where the time goes: {TIME_GOES}" in slow.verdict.notes
    fast = make(ratio=0.5).run_check("m", "ptq_int8", "latency")
    assert not fast.failed and not any("where the time goes" in n for n in fast.verdict.notes)
    # A result slower than float says it too, passing or not.
    slower_than_float = make("missing", ratio=1.5).run_check("m", "ptq_int8", "latency")
    assert any(TIME_GOES in n for n in slower_than_float.verdict.notes)


def elsewhere(make):
    """Pretend the baseline was recorded on another machine class."""
    doc = json.loads(path(make).read_text())
    doc["environment"]["machine"] = "x86_64 avx2 (another class)"
    path(make).write_text(json.dumps(doc))


def test_paired_accuracy_against_the_accepted_file(make):
    run_all(make("missing"))
    elsewhere(make)
    other = b"TFL3 converted on another machine"
    noise = make(tflite=other, row=ROW | {"accuracy": 0.9675},
                 side={"paired": PairedOutcome(400, 3, 2)}).run_check("m", "ptq_int8",
                                                                      "baseline")
    assert not noise.failed, noise.message()
    drop = make(tflite=other, row=ROW | {"accuracy": 0.955},
                side={"paired": PairedOutcome(400, 6, 0)}).run_check("m", "ptq_int8",
                                                                     "baseline")
    assert drop.failed and [r.metric for r in drop.verdict.regressions] == ["accuracy"]
    assert "6 lost, 0 gained" in drop.message()


def test_fidelity_is_judged_for_the_same_inputs_only(make):
    run_all(make("missing"))
    other = b"TFL3 perturbed"
    moved = make(tflite=other, side={"agreement": 1.0, "max_output_diff": 0.2})
    outcome = moved.run_check("m", "ptq_int8", "baseline")
    assert [r.metric for r in outcome.verdict.regressions] == [
        "output difference vs accepted", "tflite_sha256"]
    elsewhere(make)
    outcome = moved.run_check("m", "ptq_int8", "baseline")
    assert [r.metric for r in outcome.verdict.regressions] == ["output difference vs accepted"]
    retrained = make(tflite=other, side={"agreement": 0.9, "max_output_diff": 0.5},
                     row=ROW | {"inputs": ROW["inputs"] | {"model": "n" * 64}})
    outcome = retrained.run_check("m", "ptq_int8", "baseline")
    assert not outcome.failed
    assert "the model changed since the baseline" in outcome.message()


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
    from compressgate.gate.baselines import ARTIFACT_FIGURE as METRIC

    sha = hashlib.sha256(TFLITE).hexdigest()
    row = ROW | {"cached": False}
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    doc = json.loads(path(make).read_text())
    assert doc["metrics"][METRIC] == sha
    assert not make(row=row).run_check("m", "ptq_int8", "baseline").failed
    changed = make(row=row, tflite=b"TFL3 other").run_check("m", "ptq_int8", "baseline")
    assert changed.failed and "different .tflite" in changed.message()
    # On another machine class the bytes are not compared; the outputs are.
    doc["environment"]["machine"] = "x86_64 avx2 (another class)"
    path(make).write_text(json.dumps(doc))
    elsewhere = make(row=row, tflite=b"TFL3 other").run_check("m", "ptq_int8", "baseline")
    assert not elsewhere.failed
    assert "outputs compared side by side instead" in elsewhere.message()
    # A baseline from before this field, on another build: not judged here, and
    # update=missing does not record this build's bytes as the recording build's.
    del doc["metrics"][METRIC]
    path(make).write_text(json.dumps(doc))
    other = make(row=row).run_check("m", "ptq_int8", "baseline")
    assert not other.failed and "no sha256 recorded" in other.message()
    make("missing", row=row).run_check("m", "ptq_int8", "baseline")
    assert METRIC not in json.loads(path(make).read_text())["metrics"]
    # On the recording build it fails clearly, and update=missing adds it.
    doc["environment"]["machine"] = make().env["machine"]
    path(make).write_text(json.dumps(doc))
    old = make(row=row).run_check("m", "ptq_int8", "baseline")
    assert old.failed and f"no baseline for {METRIC}" in old.message()
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    assert json.loads(path(make).read_text())["metrics"][METRIC] == sha


def test_a_declared_nondeterministic_recipe_skips_only_the_sha256_row(make, tmp_path):
    from compressgate.gate.baselines import ARTIFACT_FIGURE as METRIC

    row = ROW | {"cached": False}
    assert not make("missing", row=row).run_check("m", "ptq_int8", "baseline").failed
    (tmp_path / "fixtures" / "manifest.json").write_text(json.dumps({"models": {"m": {
        "model": "m.keras", "data": "m.npz",
        "recipe_overrides": {"ptq_int8": {"nondeterministic": "measured two files"}}}}}))
    other = make(row=row, tflite=b"TFL3 c").run_check("m", "ptq_int8", "baseline")
    assert not other.failed
    sha = next(r for r in other.verdict.rows if r.metric == METRIC)
    assert sha.status == "info" and "measured two files" in sha.note
    # The other figures are still gated: a larger file still fails.
    bigger = make(row=row | {"size_bytes": ROW["size_bytes"] * 2}, tflite=b"TFL3 c")
    assert bigger.run_check("m", "ptq_int8", "baseline").failed


BROKEN = ROW | {"accuracy_drop_pts": 5.0, "accuracy": 0.92}


@pytest.mark.parametrize("mode", ["all", "failed", "missing"])
@pytest.mark.parametrize("check", ["baseline", "latency"])
def test_every_update_mode_refuses_to_record_an_absolute_failure(make, mode, check):
    # No baseline yet: every mode would write one, and the latency check alone would too.
    outcome = make(mode, row=BROKEN).run_check("m", "ptq_int8", check)
    assert outcome.failed and "refused to record the baseline: accuracy" in outcome.message()
    assert not path(make).exists() and not path(make).with_suffix(".tflite").exists()
    forced = make(mode, row=BROKEN, force=True).run_check("m", "ptq_int8", check)
    assert path(make).exists() and forced.update is not None


class Flaky(FakeRunner):
    """The first latency measurement shows ``first``, every later one ``then``."""

    def __init__(self, row, first, then):
        super().__init__(row, first)
        self.calls, self.then = 0, then

    def latency(self, model, recipe, pairs=41):
        self.calls += 1
        return _pairs(self.ratio if self.calls == 1 else self.then, pairs)


@pytest.mark.parametrize(("first", "then", "failed", "calls"), [
    (0.9, 0.5, False, 2),   # a transient slowdown: confirmed away
    (0.9, 0.9, True, 2),    # a real one shows twice
    (0.5, 0.9, False, 1),   # a pass is not re-measured
])
def test_a_latency_failure_is_confirmed_once_on_fresh_interpreters(make, tmp_path, first,
                                                                   then, failed, calls):
    run_all(make("missing"))
    session = make()
    session._runner = Flaky(ROW, first, then)
    outcome = session.run_check("m", "ptq_int8", "latency")
    assert outcome.failed is failed and session._runner.calls == calls
    if calls == 2:
        assert f"first measurement {first:.3f}" in outcome.message()


def test_strict_makes_a_comparison_this_machine_cannot_make_fail(make):
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    doc["machines"] = {}
    path(make).write_text(json.dumps(doc))
    relaxed = make().run_check("m", "ptq_int8", "latency")
    assert not relaxed.failed and [r.metric for r in relaxed.verdict.skipped] == [
        "latency_ratio"]
    session = make()
    session.settings = replace(session.settings, strict=True)
    strict = session.run_check("m", "ptq_int8", "latency")
    assert strict.failed and "strict: not judged here" in strict.message()


def test_missing_mode_never_moves_a_recorded_figure(make):
    run_all(make("missing"))
    before = json.loads(path(make).read_text())
    drifted = ROW | {"size_bytes": 1005, "accuracy": 0.9675}
    for check in ("baseline", "latency"):
        make("missing", row=drifted, ratio=0.52).run_check("m", "ptq_int8", check)
    assert json.loads(path(make).read_text()) == before


def test_missing_mode_records_input_digests_a_baseline_lacks(make):
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    del doc["inputs"]
    path(make).write_text(json.dumps(doc))
    outcome = make("missing").run_check("m", "ptq_int8", "baseline")
    assert not outcome.failed
    assert json.loads(path(make).read_text())["inputs"] == ROW["inputs"]


def recorded_by_another_class(make) -> str:
    """The baseline as another machine class leaves it: its build, its bytes, its class's
    machine-bound figures only (fine-tuned bytes differ by class)."""
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    other = "x86_64 avx512f+avx512_vnni (another class)"
    this = doc["environment"]["machine"]
    doc["environment"]["machine"] = other
    doc["machines"] = {other: doc["machines"].pop(this)}
    other_bytes = b"TFL3 the other class's fine-tuned bytes"
    doc["metrics"]["tflite_sha256"] = hashlib.sha256(other_bytes).hexdigest()
    path(make).write_text(json.dumps(doc))
    path(make).with_suffix(".tflite").write_bytes(other_bytes)
    return other


@pytest.mark.parametrize("mode", ["missing", "failed"])
def test_recording_a_new_class_keeps_the_build_whose_bytes_are_recorded(make, mode):
    other = recorded_by_another_class(make)
    before = json.loads(path(make).read_text())
    outcomes = run_all(make(mode))
    assert not any(o.failed for o in outcomes.values()), [
        o.message() for o in outcomes.values() if o.failed]
    doc = json.loads(path(make).read_text())
    # The bytes are still the other class's, and so is the build the record names.
    assert doc["environment"] == before["environment"]
    assert doc["metrics"] == before["metrics"]
    assert other in doc["machines"] and len(doc["machines"]) == (2 if mode == "missing" else 1)
    # The next run on this class judges the bytes as another build's: no false alarm.
    again = run_all(make())
    assert not any(o.failed for o in again.values()), [
        o.message() for o in again.values() if o.failed]


def test_missing_mode_adds_no_sha256_made_by_another_build(make):
    recorded_by_another_class(make)
    doc = json.loads(path(make).read_text())
    del doc["metrics"]["tflite_sha256"]
    path(make).write_text(json.dumps(doc))
    path(make).with_suffix(".tflite").unlink()
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    assert "tflite_sha256" not in doc["metrics"]
    assert not path(make).with_suffix(".tflite").exists()
    assert not any(o.failed for o in run_all(make()).values())


def test_a_record_spans_processes_and_a_run_spends_fresh_ones_only_beyond_it(make):
    recording = make("missing")
    recording._runner.modes = [0.5, 0.7]  # fresh processes alternate between two modes
    run_all(recording)
    figures = json.loads(path(make).read_text())["machines"][recording.machine_class]
    # This process and 4 fresh ones: both modes in the record, its range their edges.
    assert recording._runner.fresh == 4
    assert figures[baselines.PROCESS_FIGURE] == pytest.approx([0.5, 0.5, 0.5, 0.7, 0.7],
                                                              abs=0.001)
    assert (figures["latency_ratio_low"], figures["latency_ratio_high"]) == (
        figures[baselines.PROCESS_FIGURE][0], figures[baselines.PROCESS_FIGURE][-1])
    # The slow mode in this process: within the envelope, no fresh process spent.
    slow_mode = make(ratio=0.7)
    outcome = slow_mode.run_check("m", "ptq_int8", "latency")
    assert not outcome.failed and slow_mode._runner.fresh == 0, outcome.message()
    # Beyond it here, within it in a fresh process: two processes, a pass.
    flipped = make(ratio=0.7 * 1.3)
    flipped._runner.modes = [0.5]
    outcome = flipped.run_check("m", "ptq_int8", "latency")
    assert not outcome.failed and flipped._runner.fresh == 1, outcome.message()
    assert "2 processes" in outcome.message()
    # Slower than both modes by more than the tolerance: 4 processes, then confirmed.
    slower = make(ratio=0.7 * 1.3)
    outcome = slower.run_check("m", "ptq_int8", "latency")
    assert [r.metric for r in outcome.verdict.regressions] == ["latency_ratio"]
    assert slower._runner.fresh == 2 * 3 and "4 processes" in outcome.message()


def test_a_one_process_record_is_judged_as_before_without_fresh_processes(make):
    run_all(make("missing"))
    doc = json.loads(path(make).read_text())
    figures = doc["machines"][make().machine_class]
    del figures[baselines.PROCESS_FIGURE]
    path(make).write_text(json.dumps(doc))
    same = make()
    assert not same.run_check("m", "ptq_int8", "latency").failed and same._runner.fresh == 0
    slow = make(ratio=0.6)
    assert slow.run_check("m", "ptq_int8", "latency").failed and slow._runner.fresh == 0
    # "missing" moves nothing recorded: the one-process record stays as it is.
    make("missing", ratio=0.6).run_check("m", "ptq_int8", "latency")
    assert json.loads(path(make).read_text()) == doc


def _counting_sides(session):
    """The session's runner, counting its side-by-side runs (and on which thread)."""
    import threading

    calls, side_by_side = [], session.runner.side_by_side

    def counted(*args):
        calls.append(threading.current_thread().name)
        return side_by_side(*args)

    session.runner.side_by_side = counted
    return calls


@pytest.mark.parametrize(("collected", "jobs", "ahead"), [
    ({("m", "ptq_int8", "baseline")}, 2, 1),  # measured up front, in the pool
    ({("m", "ptq_int8", "latency")}, 2, 0),  # no baseline check collected: nothing ahead
    ({("m", "ptq_int8", "baseline")}, 1, 0),  # one job: when the check reads it
])
def test_accepted_file_is_run_ahead_only_for_a_collected_baseline_check(make, collected,
                                                                        jobs, ahead):
    run_all(make("missing"))
    session = make(side={"agreement": 0.5}, tflite=b"TFL3 another file")
    session.settings = replace(session.settings, jobs=jobs)
    session.collected = frozenset(collected)
    calls = _counting_sides(session)
    session.prepare()
    assert len(calls) == ahead
    assert all(name != "MainThread" for name in calls)
    outcome = session.run_check("m", "ptq_int8", "baseline")
    assert len(calls) == 1  # read once, whether ahead or by the check
    assert outcome.failed  # the accepted file's run is what the check judged


def test_a_broken_baseline_does_not_stop_the_run_ahead(make):
    run_all(make("missing"))
    path(make).write_text("{not json")
    session = make()
    session.settings = replace(session.settings, jobs=2)
    session.collected = frozenset({("m", "ptq_int8", "baseline")})
    calls = _counting_sides(session)
    session.prepare()  # no error here: the baseline check names the file
    assert calls == []
    with pytest.raises(UserInputError, match=r"ptq_int8\.json"):
        session.run_check("m", "ptq_int8", "baseline")
