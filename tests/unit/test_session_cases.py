"""The gate session (``compressgate.gate.session``) on a stand-in runner that knows two models
and refuses any other question: each check asks about its own case, caches per case,
records what it should and reads back what a user sees. Written against the mutants that
``tox -e mutation`` found surviving the other unit tests (see README "Testing"). No TF."""

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from compressgate.diagnosis.report import diagnose_note
from compressgate.errors import UserInputError
from compressgate.gate import baselines as bl
from compressgate.gate import rules
from compressgate.gate.records import CheckRecord, Row, Update, Verdict
from compressgate.gate.session import Case, CheckOutcome, GateSession, Settings
from compressgate.measure.stats import LatencyPairs, PairedOutcome, SideBySide
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import get_recipe
from compressgate.tolerances import Tolerances

R = "ptq_int8"
INPUTS = {"model": "m" * 64, "data": "d" * 64, "recipe": "r" * 32}


def make_row(model, **overrides):
    return {"model": model, "recipe": R, "converted": True, "error": None,
            "accuracy": 0.97 if model == "m" else 0.95, "float_accuracy": 0.975,
            "accuracy_drop_pts": 0.5, "size_bytes": 1000 if model == "m" else 2000,
            "size_ratio": 4.0, "gzip_bytes": 900, "gzip_ratio": 4.1, "sparsity": 0.0,
            "input_dtype": "int8", "output_dtype": "int8", "float_ops": [], "test_rows": 400,
            "inputs": INPUTS} | overrides


def pairs(ratio, n=42):
    """``n`` pairs whose median candidate/reference ratio is ``ratio``."""
    return LatencyPairs((1.0,) * n,
                        tuple(ratio * (1 + (i - (n - 1) / 2) * 0.0005) for i in range(n)))


class Runner:
    """Answers only for models m and n (recipe ptq_int8 and float); logs every call."""

    class backend:
        @staticmethod
        def versions():
            return {"tensorflow": "2.21.0"}

    def __init__(self, rows=None, tflite=None, ratio=None, side_ratio=None):
        self.rows = {(m, R): make_row(m) for m in ("m", "n")} | (rows or {})
        self.tflite = {(m, R): f"TFL3 {m}".encode() for m in ("m", "n")} | (tflite or {})
        self.ratio = {("m", R): 0.5, ("n", R): 0.6} | (ratio or {})
        self.side_ratio = side_ratio or {}
        self.calls = []

    def _key(self, model, recipe):
        assert (model, recipe) in self.rows, (model, recipe)
        return model, recipe

    def precompute(self, plan, jobs):
        self.calls.append(("precompute", plan, jobs))

    def measure_files(self, plan, jobs):
        self.calls.append(("measure_files", plan, jobs))

    def row(self, model, recipe):
        key = self._key(model, recipe)
        self.calls.append(("row", model, recipe))
        return ResultRow.from_dict({"tflite_sha256": hashlib.sha256(self.tflite[key]).hexdigest(),
                                    **self.rows[key]})

    def recipe(self, model, name):
        assert model in ("m", "n"), model
        return get_recipe(name)

    def outcome(self, model, recipe):
        key = self._key(model, recipe)
        return SimpleNamespace(tflite=self.tflite[key], converted=self.rows[key]["converted"],
                               error=self.rows[key]["error"])

    def side_by_side(self, model, recipe, accepted):
        key = self._key(model, recipe)
        self.calls.append(("side_by_side", model, recipe, accepted))
        if accepted == self.tflite[key]:
            return SideBySide(True)
        return SideBySide(False, PairedOutcome(400, 0, 0), self.rows[key]["accuracy"],
                               1.0, 0.0)

    def latency(self, model, recipe, pairs=41):
        key = self._key(model, recipe)
        self.calls.append(("latency", model, recipe, pairs))
        ratio = self.ratio[key]
        return None if ratio is None else globals()["pairs"](ratio, pairs)

    def latency_against(self, model, recipe, accepted, pairs=41):
        key = self._key(model, recipe)
        self.calls.append(("latency_against", model, recipe, accepted, pairs))
        return globals()["pairs"](self.side_ratio.get(key, 1.0), pairs)

    def where_time_goes(self, model, recipe):
        self.calls.append(("where_time_goes", model, recipe))
        return "all 4 ops run on XNNPACK: the time is not in built-in kernels"

    def latency_processes(self, model, recipe, processes, pairs=41):
        key = self._key(model, recipe)
        self.calls.append(("latency_processes", model, recipe, processes, pairs))
        return tuple(globals()["pairs"](self.ratio[key], pairs) for _ in range(processes))

    def count(self, name):
        return sum(1 for c in self.calls if c[0] == name)


@pytest.fixture
def project(tmp_path):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    manifest = fixtures / "manifest.json"

    def write(**n_entry):
        manifest.write_text(json.dumps({"recipes": ["float", R], "models": {
            "m": {"model": "m.keras", "data": "m.npz", "recipes": [R, "ptq_dynamic"],
                  "recipe_overrides": {"ptq_dynamic": {"unsupported": "no dynamic range"}}},
            "n": {"model": "n.keras", "data": "n.npz", **n_entry}}}))

    write()

    def session(runner=None, **settings):
        fields = {"baselines": tmp_path / "baselines", "config": manifest, "reports": None,
                  "recipes": (R,)} | settings
        return GateSession(Settings(**fields), runner=runner or Runner())

    session.write = write
    session.baselines = tmp_path / "baselines"
    return session


def baseline_path(project, model="m"):
    return project.baselines / model / f"{R}.json"


def record(project, model="m", runner=None, **settings):
    """Record a complete baseline for ``model`` (every check, update=missing)."""
    session = project(runner, update="missing", **settings)
    for check in ("baseline", "latency"):
        session.run_check(model, R, check)
    return json.loads(baseline_path(project, model).read_text())


def rewrite(project, model="m", **changes):
    path = baseline_path(project, model)
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        doc[key] = value
    path.write_text(json.dumps(doc))
    return doc


# -- what to gate -------------------------------------------------------------------------

def test_cases_follow_the_models_own_recipes_else_the_projects(project):
    session = project(recipes=())
    # ptq_int8 promises TFLM by default: its cases carry the targets check.
    assert session.cases() == [Case("m", R, None, True),
                               Case("m", "ptq_dynamic", "no dynamic range"),
                               Case("n", "float"), Case("n", R, None, True)]
    assert project(recipes=(), models=("n",)).cases() == [Case("n", "float"),
                                                          Case("n", R, None, True)]


def test_every_case_and_its_float_reference_are_computed_once_up_front(project):
    runner = Runner()
    session = project(runner, recipes=(), jobs=3)
    session.row("m", R)
    session.row("n", R)
    # The float references first: every drop and ratio is measured against them.
    assert runner.calls[0] == ("precompute", [("m", "float"), ("n", "float"), ("m", R),
                                              ("n", R)], 3)
    assert runner.count("precompute") == 1
    # Then every file's peak memory, as many at a time as there are jobs, before a row.
    assert runner.calls[1] == ("measure_files", runner.calls[0][1], 3)
    assert runner.count("measure_files") == 1


def test_rows_and_latency_are_cached_per_case(project):
    runner = Runner()
    session = project(runner)
    assert session.row("m", R).accuracy == 0.97
    assert session.row("n", R).accuracy == 0.95
    session.row("m", R)
    assert runner.count("row") == 2
    assert session.latency("m", R).ratio == pytest.approx(0.5)
    assert session.latency("n", R).ratio == pytest.approx(0.6)
    session.latency("m", R)
    assert runner.count("latency") == 2
    session.latency("m", R, fresh=True)
    assert runner.count("latency") == 3


def test_a_models_own_tolerances_win_over_the_projects(project):
    project.write(tolerances={"size_pct": 50})
    session = project(tolerances=Tolerances(size_pct=2.0))
    assert session.tolerances("n") == Tolerances(size_pct=50)
    assert session.tolerances("m") == Tolerances(size_pct=2.0)
    assert session.tolerances("other") == Tolerances(size_pct=2.0)


def test_an_unknown_check_names_the_known_ones(project):
    with pytest.raises(UserInputError) as info:
        project().run_check("m", R, "speed")
    assert str(info.value) == ("unknown check 'speed' (expected one of ('conversion', "
                               "'accuracy', 'size', 'baseline', 'latency', 'targets', 'device'))")


def test_absolute_checks_read_their_own_case(project):
    runner = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=3.0)})
    session = project(runner)
    assert not session.run_check("m", R, "accuracy").failed
    failed = session.run_check("n", R, "accuracy").verdict
    assert (failed.model, failed.recipe, failed.check) == ("n", R, "accuracy")
    assert failed.failed


# -- diagnosis of an accuracy failure -----------------------------------------------------

def test_an_accuracy_failure_and_only_it_gets_a_diagnosis_note(project, tmp_path):
    runner = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=3.0)})
    calls = []

    def diagnoser(session, model, recipe):
        calls.append((session, model, recipe))
        return "worst layers: dense"

    session = GateSession(replace(project().settings), runner=runner, diagnoser=diagnoser)
    for check in ("conversion", "size"):
        assert session.run_check("n", R, check).verdict.notes == ()
    assert session.run_check("m", R, "accuracy").verdict.notes == ()
    assert calls == []
    failed = session.run_check("n", R, "accuracy").verdict
    assert calls == [(session, "n", R)]
    assert failed.rows == rules.check_accuracy(ResultRow.from_dict(runner.rows[("n", R)]),
                                               get_recipe(R).promise).rows
    # The diagnosis first, then the lines that would accept the drop on purpose.
    assert failed.notes[0] == "worst layers: dense" and len(failed.notes) == 2
    assert '"max_drop_pts": 3.01' in failed.notes[1]


def test_only_a_session_given_a_diagnoser_explains_a_failure(project):
    runner = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=3.0)})
    stand_in = GateSession(project().settings, runner=runner)
    notes = stand_in.run_check("n", R, "accuracy").verdict.notes
    assert len(notes) == 1 and notes[0].startswith("to accept the measured figure")
    real = GateSession(project().settings, runner=runner, diagnoser=diagnose_note)
    notes = real.run_check("n", R, "accuracy").verdict.notes
    assert len(notes) == 2 and notes[0].startswith("diagnosis failed: ")


def test_diagnose_note_points_at_the_report(project, monkeypatch, tmp_path):
    import compressgate.diagnosis.report

    written = []
    def collect(runner, model, recipe):
        assert isinstance(runner, Runner)
        return "diag", model, recipe

    monkeypatch.setattr(compressgate.diagnosis.report, "collect", collect)
    monkeypatch.setattr(compressgate.diagnosis.report, "summary_line",
                        lambda diag: f"worst layers of {diag[1]} x {diag[2]}: dense")

    def write(diag, directory):
        written.append((diag, directory))
        return [directory / "n-ptq_int8.md", directory / "n-ptq_int8.csv"]

    monkeypatch.setattr(compressgate.diagnosis.report, "write", write)
    quiet = project()
    assert diagnose_note(quiet, "n", R) == "worst layers of n x ptq_int8: dense"
    assert written == []
    reports = tmp_path / "reports"
    loud = project(reports=reports)
    assert diagnose_note(loud, "n", R) == (f"worst layers of n x ptq_int8: dense (report: "
                                           f"{reports / 'diagnosis' / 'n-ptq_int8.md'})")
    assert written == [(("diag", "n", R), reports / "diagnosis")]


def test_a_failing_diagnosis_never_hides_the_verdict(project, monkeypatch):
    import compressgate.diagnosis.report

    def broken(runner, model, recipe):
        raise RuntimeError("x" * 300)

    monkeypatch.setattr(compressgate.diagnosis.report, "collect", broken)
    assert diagnose_note(project(), "n", R) == "diagnosis failed: RuntimeError: " + "x" * 200


# -- pytest-benchmark's invoker -----------------------------------------------------------

def test_the_benchmark_invoker_runs_the_cases_own_file(project, monkeypatch):
    from compressgate.measure import litert

    runner = Runner()
    runner.sample = lambda model: f"sample of {model}"
    monkeypatch.setattr(litert, "ready_invoke", lambda tflite, sample: (tflite, sample))
    invoke, info = project(runner).invoker("n", R)
    assert invoke == (b"TFL3 n", "sample of n")
    assert info == {"size_bytes": 2000, "gzip_bytes": 900, "accuracy": 0.95,
                    "accuracy_drop_pts": 0.5, "input_dtype": "int8", "recipe": R}
    broken = Runner(rows={("n", R): make_row("n", converted=False, error="boom")})
    with pytest.raises(UserInputError, match=r"^n x ptq_int8: not converted \(boom\)$"):
        project(broken).invoker("n", R)


# -- the baseline check -------------------------------------------------------------------

def test_a_missing_baseline_names_its_path_and_how_to_create_it(project):
    outcome = project(command="tox -e gate --").run_check("n", R, "baseline")
    path = baseline_path(project, "n")
    assert outcome.verdict == Verdict("n", R, "baseline", (Row(
        "baseline", None, str(path), "-", "fail",
        "missing; create it with: tox -e gate -- --compressgate-update=missing",
        missing=True),))


def test_each_case_is_judged_against_its_own_accepted_file(project):
    runner = Runner()
    record(project, "m", runner)
    record(project, "n", runner)
    session = project(runner)
    for model in ("m", "n"):
        assert not session.run_check(model, R, "baseline").failed
    sides = [c[1:] for c in runner.calls if c[0] == "side_by_side"]
    assert sides[-2:] == [("m", R, b"TFL3 m"), ("n", R, b"TFL3 n")]
    assert bl.load(baseline_path(project, "n"), "n", R).artifact_path.read_bytes() == \
        b"TFL3 n"
    # accepted files and side-by-side results are read once per case
    session.run_check("n", R, "baseline")
    assert runner.count("side_by_side") == len(sides)


def test_the_reference_a_case_is_judged_against(project):
    project.write(recipe_overrides={R: {"nondeterministic": "two files"}})
    runner = Runner()
    record(project, "n", runner)
    doc = rewrite(project, "n", inputs=INPUTS | {"data": "e" * 64})
    doc["environment"]["tensorflow"] = "2.20.0"
    rewrite(project, "n", environment=doc["environment"])
    baseline_path(project, "n").with_suffix(".tflite").unlink()
    session = project(runner)
    stored = bl.load(baseline_path(project, "n"), "n", R)
    ref = session.reference("n", R, stored)
    assert ref == rules.Reference(
        stored.metrics, stored.machine(session.machine_class), session.machine_class, None,
        absent="accepted artifact ptq_int8.tflite absent",
        build_changes=("tensorflow 2.20.0 (now 2.21.0)",), changed_inputs=("the data",),
        nondeterministic="two files", inputs_recorded=True, finetuned=False)
    assert session.machine_class
    runner.rows[("m", "prune")] = make_row("m", recipe="prune")
    runner.tflite[("m", "prune")] = b"TFL3 pruned"
    pruned = project(runner).reference("m", "prune", stored)
    assert pruned.finetuned and pruned.nondeterministic is None


def test_build_changes_name_the_machine_class_and_unknown_versions(project):
    session = project()
    env = session.env
    stored = bl.Baseline(Path("b.json"), "m", R, {}, {"python": env["python"],
                                                      "machine": "other class"})
    assert session.build_changes(stored) == (
        f"machine class other class (now {env['machine']})",
        "tensorflow unknown (now 2.21.0)")


def test_a_baseline_of_a_failed_conversion_counts_as_complete(project):
    runner = Runner(rows={("n", R): make_row("n", converted=False, error="old")})
    session = project(runner, update="all", force=True)
    session.run_check("n", R, "baseline")
    doc = json.loads(baseline_path(project, "n").read_text())
    assert doc["metrics"] == {"converted": False, "error": "old"}
    now = project(Runner()).run_check("n", R, "baseline")
    assert now.verdict.rows == (Row("converted", True, False, "-", "improved", "old"),)
    still = project(runner).run_check("n", R, "baseline")
    assert still.verdict.rows == (Row("converted", False, False, "-", "pass", "old"),)


def test_a_baseline_without_its_figures_is_missing(project):
    record(project, "n")
    metrics = {"accuracy": 0.95}        # no size figures, and no "converted" either
    rewrite(project, "n", metrics=metrics)
    outcome = project().run_check("n", R, "baseline")
    assert [r.metric for r in outcome.verdict.rows] == ["baseline"]


def test_a_custom_metric_records_its_loss(project):
    custom = make_row("n", metric="mae", score=0.2, metric_loss=0.01, max_loss=0.05,
                      float_score=0.19, higher_is_better=False, metric_tolerance=0.05,
                      accuracy_drop_pts=None)
    project(Runner(rows={("n", R): custom}), update="all").run_check("n", R, "baseline")
    metrics = json.loads(baseline_path(project, "n").read_text())["metrics"]
    assert metrics["metric_loss"] == 0.01 and metrics["mae"] == 0.2
    assert "accuracy_drop_pts" not in metrics


def test_update_reasons_and_the_rows_they_settle(project):
    created = project(update="all").run_check("n", R, "baseline")
    assert created.update.reason == "created"
    assert created.update.path == str(baseline_path(project, "n"))
    unchanged = project(update="all").run_check("n", R, "baseline")
    assert unchanged.update is None                  # nothing moved: no diff, no update
    bigger = Runner(rows={("n", R): make_row("n", size_bytes=2005)})
    assert project(bigger, update="all").run_check("n", R, "baseline").update.reason == \
        "updated"
    much = Runner(rows={("n", R): make_row("n", size_bytes=3000)},
                  tflite={("n", R): b"TFL3 n"})
    outcome = project(much, update="failed").run_check("n", R, "baseline")
    assert outcome.update.reason == "updated: was failing"
    size = next(r for r in outcome.verdict.rows if r.metric == "size_bytes")
    assert size == Row("size_bytes", 3000, 2005, "+1.0 %", "pass", "recorded now")
    sparsity = next(r for r in outcome.verdict.rows if r.metric == "sparsity")
    assert sparsity.status == "pass" and sparsity.note == "" and sparsity.headroom is None
    assert (outcome.verdict.model, outcome.verdict.recipe, outcome.verdict.check) == (
        "n", R, "baseline")


def test_missing_mode_settles_only_the_rows_that_lacked_a_figure(project):
    runner = Runner()
    record(project, "n", runner)
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["metrics"]["tflite_sha256"]
    rewrite(project, "n", metrics=doc["metrics"])
    big = Runner(rows={("n", R): make_row("n", size_bytes=3000)})
    outcome = project(big, update="missing").run_check("n", R, "baseline")
    sha = next(r for r in outcome.verdict.rows if r.metric == "tflite_sha256")
    assert (sha.status, sha.note, sha.missing) == ("pass", "recorded now", True)
    size = next(r for r in outcome.verdict.rows if r.metric == "size_bytes")
    assert size.status == "regression" and size.note == ""
    assert outcome.verdict.notes == ()


def test_refusal_says_why_and_how_to_force(project):
    broken = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=5.0)})
    outcome = project(broken, update="all").run_check("n", R, "baseline")
    assert outcome.refused == ("accuracy: accuracy drop (pts) 5 (pass --compressgate-force "
                               "to record it anyway)")
    assert outcome.message() == (outcome.verdict.table() + "\n  refused to record the "
                                 "baseline: " + outcome.refused)
    assert CheckOutcome(outcome.verdict).message() == outcome.verdict.table()


def test_a_written_artifact_replaces_the_one_cached_for_this_session(project):
    record(project, "n")
    newer = Runner(tflite={("n", R): b"TFL3 n, newer"})
    session = project(newer, update="all")
    session.run_check("n", R, "baseline")
    assert baseline_path(project, "n").with_suffix(".tflite").read_bytes() == b"TFL3 n, newer"
    latency = session.run_check("n", R, "latency").verdict
    side = next(r for r in latency.rows if r.metric == "time vs accepted")
    assert side.note == "identical bytes to the accepted file: the same artifact"


# -- update=missing never moves what is recorded ------------------------------------------

def test_missing_mode_keeps_a_recorded_sha_and_its_artifact(project):
    record(project, "n")
    before = baseline_path(project, "n").read_text()
    other = Runner(tflite={("n", R): b"TFL3 n, other"})
    rewrite(project, "n", environment=json.loads(before)["environment"] | {"machine": "x"})
    changed = baseline_path(project, "n").read_text()
    project(other, update="missing").run_check("n", R, "baseline")
    assert baseline_path(project, "n").read_text() == changed
    assert baseline_path(project, "n").with_suffix(".tflite").read_bytes() == b"TFL3 n"


def test_missing_mode_restores_the_accepted_artifact_of_the_recorded_sha(project):
    record(project, "n")
    artifact = baseline_path(project, "n").with_suffix(".tflite")
    artifact.unlink()
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["metrics"]["size_bytes"]                # a missing figure, so missing mode acts
    rewrite(project, "n", metrics=doc["metrics"])
    project(update="missing").run_check("n", R, "baseline")
    assert artifact.read_bytes() == b"TFL3 n"


def test_missing_mode_adds_an_old_baselines_sha_and_artifact(project):
    record(project, "n")
    artifact = baseline_path(project, "n").with_suffix(".tflite")
    artifact.unlink()
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["metrics"]["tflite_sha256"]
    rewrite(project, "n", metrics=doc["metrics"])
    project(update="missing").run_check("n", R, "baseline")
    metrics = json.loads(baseline_path(project, "n").read_text())["metrics"]
    assert metrics["tflite_sha256"] == hashlib.sha256(b"TFL3 n").hexdigest()
    assert artifact.read_bytes() == b"TFL3 n"


def test_missing_mode_keeps_recorded_memory_and_inputs(project):
    runner = Runner(rows={("n", R): make_row("n", peak_memory_bytes=1_000_000)})
    record(project, "n", runner)
    drifted = Runner(rows={("n", R): make_row(
        "n", peak_memory_bytes=1_010_000, inputs=INPUTS | {"data": "e" * 64})},
        tflite={("n", R): b"TFL3 n, retrained"})
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["metrics"]["tflite_sha256"]
    rewrite(project, "n", metrics=doc["metrics"])
    project(drifted, update="missing").run_check("n", R, "baseline")
    after = json.loads(baseline_path(project, "n").read_text())
    assert after["inputs"] == INPUTS
    assert [m["peak_memory_bytes"] for m in after["machines"].values()] == [1_000_000]


def test_missing_mode_records_input_digests_a_baseline_lacks(project):
    record(project, "n")
    rewrite(project, "n", inputs={})
    other = Runner(tflite={("n", R): b"TFL3 n, other"})   # differs: the sha row is "missing"
    project(other, update="missing").run_check("n", R, "baseline")
    assert json.loads(baseline_path(project, "n").read_text())["inputs"] == INPUTS


def test_missing_mode_with_nothing_to_add_leaves_rows_unsettled(project):
    record(project, "n")
    rewrite(project, "n", inputs={})
    no_digests = Runner(rows={("n", R): make_row("n", inputs=None)},
                        tflite={("n", R): b"TFL3 n, other"})
    before = baseline_path(project, "n").read_text()
    outcome = project(no_digests, update="missing").run_check("n", R, "baseline")
    assert outcome.update is None
    sha = next(r for r in outcome.verdict.rows if r.metric == "tflite_sha256")
    assert (sha.status, sha.missing) == ("info", True)
    assert sha.note.startswith("the baseline records no input digests")
    assert baseline_path(project, "n").read_text() == before


# -- the latency check --------------------------------------------------------------------

def latency_row(outcome, metric="latency_ratio"):
    return next(r for r in outcome.verdict.rows if r.metric == metric)


def test_latency_without_a_baseline(project):
    outcome = project(command="cmd").run_check("n", R, "latency")
    verdict = outcome.verdict
    assert (verdict.model, verdict.recipe, verdict.check) == ("n", R, "latency")
    assert [r.metric for r in verdict.rows] == ["latency_ratio", "baseline"]
    assert verdict.rows[1] == Row("baseline", None, str(baseline_path(project, "n")), "-",
                                  "fail", "missing; create it with: cmd "
                                  "--compressgate-update=missing", missing=True)
    assert latency_row(outcome).note.startswith(
        f"no latency record for machine class {project().machine_class}: ")
    assert latency_row(outcome).note.endswith("record it with: cmd --compressgate-update=missing")
    assert verdict.notes == ("float 1.0000 ms, ptq_int8 0.6000 ms per inference",)


def test_latency_reads_this_cases_record_and_its_interval(project):
    record(project, "n")
    session = project()
    cls = session.machine_class
    doc = json.loads(baseline_path(project, "n").read_text())
    # A record from one process (written before records spanned processes).
    del doc["machines"][cls][bl.PROCESS_FIGURE]
    doc["machines"][cls].update({"latency_ratio": 0.6, "latency_ratio_low": 0.55,
                                 "latency_ratio_high": 0.66})
    rewrite(project, "n", machines=doc["machines"])
    row = latency_row(project().run_check("n", R, "latency"))
    assert (row.expected, row.tolerance) == (0.6, "<= 0.759, p < 0.01")   # 0.66 * 1.15
    project.write(tolerances={"latency_pct": 50})
    assert latency_row(project().run_check("n", R, "latency")).tolerance == \
        "<= 0.99, p < 0.01"
    # A record without its interval (an older baseline): the ratio is both edges.
    for key in ("latency_ratio_low", "latency_ratio_high"):
        del doc["machines"][cls][key]
    rewrite(project, "n", machines=doc["machines"])
    project.write()
    assert latency_row(project().run_check("n", R, "latency")).tolerance == \
        "<= 0.69, p < 0.01"


def test_latency_against_the_accepted_file(project):
    record(project, "n")
    runner = Runner(tflite={("n", R): b"TFL3 n, other"}, side_ratio={("n", R): 1.0})
    session = project(runner, latency_pairs=12)
    stored = bl.load(baseline_path(project, "n"), "n", R)
    side, note, identical = session.latency_against("n", R, stored)
    assert note == "" and not identical and side.ratio == pytest.approx(1.0)
    assert runner.calls[-1] == ("latency_against", "n", R, b"TFL3 n", 12)
    session.latency_against("n", R, stored)
    assert runner.count("latency_against") == 1
    session.latency_against("n", R, stored, fresh=True)
    assert runner.count("latency_against") == 2
    same = project(Runner())
    assert latency_row(same.run_check("n", R, "latency"), "time vs accepted") == Row(
        "time vs accepted", None, None, "-", "pass",
        "identical bytes to the accepted file: the same artifact")
    assert same.latency_against("n", R, None) == (None, "", False)
    baseline_path(project, "n").with_suffix(".tflite").unlink()
    assert project().latency_against("n", R, bl.load(baseline_path(project, "n"), "n", R)) \
        == (None, "accepted artifact ptq_int8.tflite absent: a slower artifact cannot be "
                  "timed against it here", False)


def test_no_time_against_a_baseline_of_a_failed_conversion(project):
    failed = Runner(rows={("n", R): make_row("n", converted=False, error="old")})
    project(failed, update="all", force=True).run_check("n", R, "baseline")
    outcome = project().run_check("n", R, "latency")
    assert [r.metric for r in outcome.verdict.rows] == ["latency_ratio"]
    assert [r.metric for r in project().run_check("m", R, "latency").verdict.rows] == [
        "latency_ratio", "baseline"]


def test_identical_bytes_are_reported_after_a_confirmation_too(project):
    record(project, "n")
    slow = Runner(ratio={("n", R): 0.9})
    outcome = project(slow).run_check("n", R, "latency")
    assert outcome.failed and slow.count("latency") == 2
    assert latency_row(outcome, "time vs accepted") == Row(
        "time vs accepted", None, None, "-", "pass",
        "identical bytes to the accepted file: the same artifact")
    assert "first measurement 0.900, confirmation 0.900" in outcome.verdict.notes
    assert (outcome.verdict.model, outcome.verdict.recipe, outcome.verdict.check) == (
        "n", R, "latency")


def test_a_confirmation_re_times_the_accepted_file_too(project):
    record(project, "n")
    runner = Runner(tflite={("n", R): b"TFL3 n, slower"}, side_ratio={("n", R): 1.4})
    outcome = project(runner).run_check("n", R, "latency")
    assert outcome.failed and runner.count("latency_against") == 2
    assert ("first measurement 0.600, confirmation 0.600; vs accepted: first 1.400, "
            "confirmation 1.400") in outcome.verdict.notes


def test_latency_updates_record_the_new_ratio_unless_only_missing(project):
    record(project, "n")
    faster = Runner(ratio={("n", R): 0.3})
    project(faster, update="missing").run_check("n", R, "latency")
    cls = project().machine_class

    def ratio():
        return json.loads(baseline_path(project, "n").read_text())["machines"][cls][
            "latency_ratio"]

    assert ratio() == pytest.approx(0.6, abs=1e-3)
    project(faster, update="all").run_check("n", R, "latency")
    assert ratio() == pytest.approx(0.3, abs=1e-3)


def test_nothing_to_time_records_nothing(project):
    untimed = Runner(rows={("n", R): make_row("n", converted=False)}, ratio={("n", R): None})
    outcome = project(untimed, update="all", force=True).run_check("n", R, "latency")
    assert outcome.update is None and not baseline_path(project, "n").exists()


# -- --compressgate-strict ----------------------------------------------------------------

def test_strict_fails_only_the_rows_not_judged_and_keeps_the_rest(project):
    record(project, "n")
    rewrite(project, "n", machines={})
    relaxed = project().run_check("n", R, "latency")
    strict = project(strict=True).run_check("n", R, "latency")
    skipped = latency_row(relaxed)
    assert latency_row(strict) == Row(
        skipped.metric, skipped.measured, skipped.expected, skipped.tolerance, "fail",
        f"strict: not judged here: {skipped.note}", True)
    assert latency_row(strict, "time vs accepted") == latency_row(relaxed, "time vs accepted")
    assert strict.verdict.notes == relaxed.verdict.notes
    assert (strict.verdict.model, strict.verdict.recipe, strict.verdict.check) == (
        "n", R, "latency")


def test_strict_keeps_the_update_and_the_refusal(project):
    record(project, "n")
    baseline_path(project, "n").with_suffix(".tflite").unlink()
    faster = Runner(ratio={("n", R): 0.3})
    outcome = project(faster, strict=True, update="all").run_check("n", R, "latency")
    assert outcome.update is not None and outcome.update.reason == "updated"
    assert latency_row(outcome, "time vs accepted").status == "fail"
    broken = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=5.0)})
    refused = project(broken, strict=True, update="all").run_check("n", R, "latency")
    assert refused.refused.startswith("accuracy: accuracy drop (pts) 5")


# -- more of what a user reads after an update --------------------------------------------

def test_a_models_own_tolerances_judge_its_baseline(project):
    record(project, "n")
    project.write(tolerances={"size_pct": 10})
    bigger = Runner(rows={("n", R): make_row("n", size_bytes=2100)})     # +5 %
    assert not project(bigger).run_check("n", R, "baseline").failed
    project.write()
    assert project(bigger).run_check("n", R, "baseline").failed


def test_other_versions_are_noted_but_not_another_machine_class(project):
    record(project, "n")
    doc = json.loads(baseline_path(project, "n").read_text())
    env = doc["environment"]
    rewrite(project, "n", environment=env | {"machine": "another class"})
    assert project().run_check("n", R, "baseline").verdict.notes == ()
    rewrite(project, "n", environment=env | {"tensorflow": "2.20.0", "python": "3.10.0"})
    verdict = project().run_check("n", R, "baseline").verdict
    assert verdict.notes == (f"baseline recorded with other versions: python 3.10.0 (now "
                             f"{env['python']}), tensorflow 2.20.0 (now 2.21.0)",)
    assert (verdict.model, verdict.recipe, verdict.check) == ("n", R, "baseline")
    updated = project(Runner(rows={("n", R): make_row("n", size_bytes=2005)}),
                      update="all").run_check("n", R, "baseline")
    assert updated.update is not None and updated.verdict.notes == verdict.notes


def test_every_refusal_is_listed(project):
    broken = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=5.0,
                                             input_dtype="float32")})
    outcome = project(broken, update="all").run_check("n", R, "baseline")
    assert outcome.refused == ("conversion: input_dtype float32; accuracy: accuracy drop "
                               "(pts) 5 (pass --compressgate-force to record it anyway)")


def test_failed_mode_settles_a_failed_row_too(project):
    runner = Runner(rows={("n", R): make_row("n", peak_memory_bytes=1_000_000)})
    record(project, "n", runner)
    unmeasured = Runner(rows={("n", R): make_row("n", peak_memory_bytes=None)})
    outcome = project(unmeasured, update="failed").run_check("n", R, "baseline")
    memory = next(r for r in outcome.verdict.rows if r.metric == "peak_memory_bytes")
    assert (memory.status, memory.note) == ("pass", "recorded now")


def test_missing_mode_never_writes_an_artifact_other_than_the_recorded_one(project):
    runner = Runner(rows={("n", R): make_row("n", peak_memory_bytes=1_000_000)})
    record(project, "n", runner)
    artifact = baseline_path(project, "n").with_suffix(".tflite")
    artifact.unlink()
    rewrite(project, "n", machines={})              # memory lacks a record: missing acts
    other = Runner(rows={("n", R): make_row("n", peak_memory_bytes=1_000_000)},
                   tflite={("n", R): b"TFL3 n, other"})
    project(other, update="missing").run_check("n", R, "baseline")
    assert not artifact.exists()
    # The very file the baseline records is restored.
    rewrite(project, "n", machines={})
    project(runner, update="missing").run_check("n", R, "baseline")
    assert artifact.read_bytes() == b"TFL3 n"


def test_an_artifact_written_mid_session_is_read_again_by_every_check(project):
    record(project, "n")
    newer = Runner(tflite={("n", R): b"TFL3 n, newer"})
    session = project(newer, update="all")
    session.run_check("n", R, "latency")
    session.run_check("n", R, "baseline")
    again = session.run_check("n", R, "latency")
    assert latency_row(again, "time vs accepted").note == \
        "identical bytes to the accepted file: the same artifact"


def test_the_accepted_file_is_timed_per_case(project):
    record(project, "m")
    record(project, "n")
    runner = Runner(tflite={("m", R): b"TFL3 m2", ("n", R): b"TFL3 n2"},
                    side_ratio={("m", R): 1.0, ("n", R): 1.1})
    session = project(runner)
    m = session.latency_against("m", R, bl.load(baseline_path(project, "m"), "m", R))[0]
    n = session.latency_against("n", R, bl.load(baseline_path(project, "n"), "n", R))[0]
    assert (m.ratio, n.ratio) == (pytest.approx(1.0), pytest.approx(1.1))


def test_an_older_baseline_without_converted_is_timed_against(project):
    record(project, "n")
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["metrics"]["converted"]
    rewrite(project, "n", metrics=doc["metrics"])
    other = Runner(tflite={("n", R): b"TFL3 n, other"})
    side, note, identical = project(other).latency_against(
        "n", R, bl.load(baseline_path(project, "n"), "n", R))
    assert side is not None and note == "" and not identical


def test_an_improvement_is_counted_from_the_low_edge_of_the_recorded_interval(project):
    record(project, "n")
    cls = project().machine_class
    doc = json.loads(baseline_path(project, "n").read_text())
    del doc["machines"][cls][bl.PROCESS_FIGURE]  # a record from one process
    doc["machines"][cls].update({"latency_ratio": 0.6, "latency_ratio_low": 0.55,
                                 "latency_ratio_high": 0.66})
    rewrite(project, "n", machines=doc["machines"])
    # 0.5 is not significantly below 0.55 / 1.15 = 0.478 (it would be below 0.6 / 1.15).
    faster = Runner(ratio={("n", R): 0.5})
    assert latency_row(project(faster).run_check("n", R, "latency")).status == "pass"


def test_missing_mode_with_a_complete_baseline_writes_nothing(project):
    """Nothing lacks a figure: even an absent accepted file of the recorded sha is left
    absent (it is restored only along with a missing figure)."""
    record(project, "n")
    artifact = baseline_path(project, "n").with_suffix(".tflite")
    artifact.unlink()
    before = baseline_path(project, "n").read_text()
    outcome = project(update="missing").run_check("n", R, "baseline")
    assert not any(r.missing for r in outcome.verdict.rows)
    assert outcome.update is None
    assert baseline_path(project, "n").read_text() == before
    assert not artifact.exists()


# -- the record the reports read -----------------------------------------------------------

def test_a_check_outcome_becomes_the_record_the_reports_read():
    verdict = Verdict("n", R, "baseline", (Row("accuracy", 0.9, 0.97, "0.5 pts", "pass"),))
    update = Update("b/n/r.json", "updated", [("accuracy", "0.97", "0.9", "-7.22 %")])
    outcome = CheckOutcome(verdict, update, refused="accuracy drop 5")
    record = outcome.record(row={"accuracy": 0.9})
    assert record == CheckRecord(
        "n", R, "baseline", failed=True, message=outcome.message(), stale=[],
        regressions=[], reasons=["refused to record the baseline: accuracy drop 5"],
        skipped=[], headroom={}, update=update, row={"accuracy": 0.9})
    assert record.message.endswith("\n  refused to record the baseline: accuracy drop 5")
    assert CheckOutcome(verdict).record().failed is False


def test_accepted_files_are_read_per_model_and_recipe(project):
    """One session, two recipes of one model and one recipe of two models: each case is
    measured against, and restored from, its own accepted file."""
    memory = {"peak_memory_bytes": 1_000_000}
    float_row = make_row("n", recipe="float", input_dtype="float32", output_dtype="float32",
                         keras_agreement=1.0, **memory)
    runner = Runner(rows={("m", R): make_row("m", **memory), ("n", R): make_row("n", **memory),
                          ("n", "float"): float_row},
                    tflite={("n", "float"): b"TFL3 n float"})
    cases = (("n", "float"), ("m", R), ("n", R))
    for model, recipe in cases:
        project(runner, update="missing", recipes=()).run_check(model, recipe, "baseline")
    session = project(runner, recipes=())
    for model, recipe in cases:
        assert not session.run_check(model, recipe, "baseline").failed
    sides = [c[1:] for c in runner.calls if c[0] == "side_by_side"]
    assert sides[-3:] == [("n", "float", b"TFL3 n float"), ("m", R, b"TFL3 m"),
                          ("n", R, b"TFL3 n")]
    # update=missing restores n's absent file though m's, and n's float file, are present.
    for model, recipe in cases:
        path = project.baselines / model / f"{recipe}.json"
        doc = json.loads(path.read_text())
        doc["machines"] = {}                        # memory lacks a record: missing acts
        path.write_text(json.dumps(doc))
    artifact = baseline_path(project, "n").with_suffix(".tflite")
    artifact.unlink()
    missing = project(runner, update="missing", recipes=())
    for model, recipe in cases:
        missing.run_check(model, recipe, "baseline")
    assert artifact.read_bytes() == b"TFL3 n"
