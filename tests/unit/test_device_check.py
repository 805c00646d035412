"""The device check inside a gate session (``GateSession._check_device`` and
``CaseState.board_runs``), on a stand-in runner and a stand-in board measurement: which
cases get it, what each board is given to measure and how often, which records judge the
boards, what a user reads, and what each update mode writes to the baseline. No TF, no
SSH (the loopback-board TF tests, ``tests/plugin/test_device_gate.py``, run the real one)."""

import hashlib
import json
from types import SimpleNamespace

import pytest
import standin
from standin import R, Runner, make_row, pairs

from compressgate.gate import baselines as bl
from compressgate.gate import device
from compressgate.gate.records import Row, Status, Verdict
from compressgate.gate.session import Case
from compressgate.pipeline import boards
from compressgate.pipeline.boards import BoardRun
from compressgate.pipeline.record import BoardFigures
from compressgate.recipes import Promise

PI5 = "aarch64 asimd+asimddp (board pi5)"
JETSON = "aarch64 asimd+sve (board jetson)"
BOARDS = {"pi5": {"ssh": "ci@pi5.local", "python": "/opt/venv/bin/python"},
          "jetson": {"ssh": "ci@jetson.local", "python": "/usr/bin/python3", "port": 2222}}
HINT = "tox -e gate -- --compressgate-update=missing"


def board_run(board: str = "pi5", cls: str = PI5, *, ratio: float | None = 0.5,
              side: float | None = None, **figures) -> BoardRun:
    fields = {"peak_memory": 1_000_000, "rows": 50, "output_agreement": 0.98,
              "output_max_quanta": 3, "output_max_diff": 0.01} | figures
    if fields.get("error") is not None:
        return BoardRun(BoardFigures(board, f"ci@{board}.local", error=fields["error"]))
    return BoardRun(BoardFigures(board, f"ci@{board}.local", cls, "Cortex-A76",
                                 "ai-edge-litert 2.3.0", **fields),
                    pairs(ratio) if ratio is not None else None,
                    pairs(side) if side is not None else None,
                    {"arch": "aarch64", "board": board}, {"ai-edge-litert": "2.3.0"})


@pytest.fixture
def measured(monkeypatch):
    """The boards' measurement, stood in: ``measured.runs[(model, board)]`` is what a
    board returns (default: ``board_run`` of its class); ``measured.calls`` logs each."""
    calls, runs = [], {}
    classes = {"pi5": PI5, "jetson": JETSON}

    def measure(runner, model, recipe, host, accepted, *, pairs, latency):
        calls.append(SimpleNamespace(runner=runner, model=model, recipe=recipe, host=host,
                                     accepted=accepted, pairs=pairs, latency=latency))
        runner.calls.append(("measure", model, host.name))
        return runs.get((model, host.name)) or board_run(host.name, classes[host.name])

    monkeypatch.setattr(boards, "measure", measure)
    return SimpleNamespace(calls=calls, runs=runs)


@pytest.fixture
def project(tmp_path):
    session = standin.project(tmp_path, boards={"pi5": BOARDS["pi5"]})

    def write(board_names=("pi5",), **n_entry):
        standin.project(tmp_path, boards={name: BOARDS[name] for name in board_names}) \
            .write(**n_entry)

    session.write = write
    return session


def path(project, model="n"):
    return project.baselines / model / f"{R}.json"


def accept(project, model="n", data=None, metrics=None, machines=None):
    """Write a baseline for ``model`` whose accepted file is ``data`` (None: no file)."""
    env = project().env
    if metrics is None:
        metrics = {"converted": True}
        if data is not None:
            metrics["tflite_sha256"] = hashlib.sha256(data).hexdigest()
    bl.update(path(project, model), model, R,
              bl.Change(metrics, artifact=data, classes=machines, records_build=True), env)


def recorded(run: BoardRun) -> dict:
    """A board class's figures of ``run`` as the baseline file keeps them (ratios to 4
    decimals)."""
    figures = device.record(run)
    assert figures is not None
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def rows(outcome) -> dict[str, Row]:
    return {r.metric: r for r in outcome.verdict.rows}


def device_check(session, model="n"):
    return session.run_check(model, R, device.DEVICE_CHECK)


# -- which cases --------------------------------------------------------------------------

def test_a_project_with_boards_gives_every_recipe_but_float_a_device_check(project):
    with_boards = project(recipes=("float", R)).cases()
    assert [(c.model, c.recipe, c.boards) for c in with_boards] == [
        ("m", "float", True), ("m", R, True), ("n", "float", True), ("n", R, True)]
    checks = {c.recipe: c.checks for c in with_boards}
    assert device.DEVICE_CHECK not in checks["float"]
    assert checks[R][-1] == device.DEVICE_CHECK
    project.write(board_names=())
    assert not any(c.boards for c in project(recipes=("float", R)).cases())
    assert device.DEVICE_CHECK not in Case("n", R).checks


# -- what each board is given, and how often ------------------------------------------------

def test_each_board_measures_a_case_once_with_the_sessions_pairs_and_latency(
        project, measured):
    project.write(board_names=("pi5", "jetson"))
    runner = Runner()
    session = project(runner, latency_pairs=12, latency=False)
    runs = session.board_runs("n", R)
    assert runner.calls[0] == ("precompute",)      # the whole plan first, then the boards
    assert [(c.model, c.recipe, c.host.name, c.host.ssh, c.accepted, c.pairs, c.latency)
            for c in measured.calls] == [
        ("n", R, "pi5", "ci@pi5.local", None, 12, False),
        ("n", R, "jetson", "ci@jetson.local", None, 12, False)]
    assert measured.calls[1].host.port == 2222
    assert all(c.runner is runner for c in measured.calls)
    assert [r.figures.machine_class for r in runs] == [PI5, JETSON]
    assert session.board_runs("n", R) is runs
    device_check(session)
    assert len(measured.calls) == 2                 # the check reads the same runs
    session.board_runs("m", R)
    assert [(c.model, c.host.name) for c in measured.calls[2:]] == [("m", "pi5"),
                                                                     ("m", "jetson")]
    timed = project(Runner(), latency_pairs=30).board_runs("n", R)
    assert measured.calls[-1].pairs == 30 and measured.calls[-1].latency is True
    assert len(timed) == 2


def test_a_case_that_did_not_convert_is_measured_on_no_board(project, measured):
    runner = Runner(rows={("n", R): make_row("n", converted=False, error="no kernel")})
    session = project(runner, update="all", force=True)
    assert session.board_runs("n", R) == ()
    outcome = device_check(session)
    assert outcome.verdict == Verdict("n", R, "device", (
        Row("converted", False, True, "-", Status.FAIL, "no kernel"),))
    assert outcome.update is None and not path(project).exists()
    assert measured.calls == []


def test_a_board_is_given_the_accepted_file_of_its_own_case(project, measured):
    accept(project, "m", b"TFL3 m, accepted")
    accept(project, "n", b"TFL3 n, accepted")
    session = project()
    session.board_runs("n", R)
    session.board_runs("m", R)
    assert [c.accepted for c in measured.calls] == [b"TFL3 n, accepted", b"TFL3 m, accepted"]
    # Another recipe of the same model: its own accepted file too.
    other = "ptq_dynamic"
    runner = Runner(rows={("n", other): make_row("n", recipe=other)},
                    tflite={("n", other): b"TFL3 n dynamic"})
    data = b"TFL3 n dynamic, accepted"
    bl.update(project.baselines / "n" / f"{other}.json", "n", other,
              bl.Change({"converted": True, "tflite_sha256": hashlib.sha256(data).hexdigest()},
                        artifact=data, records_build=True), project().env)
    both = project(runner)
    both.board_runs("n", R)
    both.board_runs("n", other)
    assert [c.accepted for c in measured.calls[-2:]] == [b"TFL3 n, accepted", data]


def test_no_accepted_file_is_given_for_a_failed_conversions_baseline_only(project, measured):
    accept(project, "n", b"TFL3 n, accepted",
           metrics={"tflite_sha256": hashlib.sha256(b"TFL3 n, accepted").hexdigest()})
    project().board_runs("n", R)                    # an older record: no "converted" key
    assert measured.calls[-1].accepted == b"TFL3 n, accepted"
    accept(project, "m", metrics={"converted": False, "error": "old"})
    # Even a file left beside a failed conversion's record is not given.
    path(project, "m").with_suffix(".tflite").write_bytes(b"TFL3 m, by hand")
    project().board_runs("m", R)
    assert measured.calls[-1].accepted is None
    path(project).with_suffix(".tflite").unlink()
    project().board_runs("n", R)
    assert measured.calls[-1].accepted is None


# -- the verdict --------------------------------------------------------------------------

def test_without_a_baseline_the_device_check_fails_as_missing_with_its_hint(project, measured):
    outcome = device_check(project())
    verdict = outcome.verdict
    assert (verdict.model, verdict.recipe, verdict.check) == ("n", R, "device")
    assert verdict.rows[-1] == Row("baseline", None, str(path(project)), "-", Status.FAIL,
                                   f"missing; create it with: {HINT}", missing=True)
    got = rows(outcome)
    memory = got["board pi5: peak_memory_bytes"]
    assert memory.status == Status.SKIPPED and memory.note.endswith(
        f"record it with: {HINT}")
    assert got["board pi5: latency_ratio"].note.endswith(f"record it with: {HINT}")
    # No accepted file to time against: no "time vs accepted" row at all.
    assert "board pi5: time vs accepted" not in got
    assert verdict.notes[0] == ("board pi5 (ci@pi5.local): class " + PI5
                                + "; Cortex-A76; ai-edge-litert 2.3.0")
    assert outcome.update is None and not path(project).exists()


def test_each_board_is_judged_against_its_own_class_record(project, measured):
    project.write(board_names=("pi5", "jetson"))
    recorded = device.record(board_run(ratio=0.5))
    accept(project, "n", b"TFL3 n", machines={PI5: recorded})
    measured.runs[("n", "pi5")] = board_run(ratio=1.0, peak_memory=5_000_000)
    outcome = device_check(project())
    got = rows(outcome)
    latency = got["board pi5: latency_ratio"]
    assert latency.status == Status.REGRESSION and latency.expected == pytest.approx(0.5, abs=0.001)
    memory = got["board pi5: peak_memory_bytes"]
    assert (memory.status, memory.expected, memory.note) == (
        Status.REGRESSION, 1_000_000, f"recorded for board class {PI5}")
    assert memory.tolerance == "+5.0 % +128 KiB"
    # The jetson has no record of its class: judged on nothing recorded, said so.
    assert got["board jetson: latency_ratio"].status == Status.SKIPPED
    assert f"machine class {JETSON}" in got["board jetson: latency_ratio"].note
    assert outcome.failed and "baseline" not in got


def test_a_models_own_tolerances_and_promise_judge_its_boards(project, measured):
    project.write(tolerances={"memory_pct": 50, "memory_kib": 0})
    accept(project, "n", b"TFL3 n", machines={PI5: device.record(board_run())})
    measured.runs[("n", "pi5")] = board_run(peak_memory=1_400_000, output_agreement=0.95)
    promised = Runner(promises={("n", R): Promise(min_kernel_agreement=0.99)})
    got = rows(device_check(project(promised)))
    memory = got["board pi5: peak_memory_bytes"]
    assert (memory.status, memory.tolerance) == (Status.PASS, "+50.0 % +0 KiB")
    outputs = got["board pi5: outputs vs CI machine"]
    assert (outputs.status, outputs.expected) == (Status.FAIL, 0.99)
    unpromised = rows(device_check(project()))["board pi5: outputs vs CI machine"]
    assert unpromised.status == Status.INFO and unpromised.note.endswith("(no promise)")


def test_the_accepted_file_reason_reaches_each_boards_time_row(project, measured):
    accept(project, "n", b"TFL3 n")                # the new file is the accepted one
    identical = rows(device_check(project()))["board pi5: time vs accepted"]
    assert identical == Row("board pi5: time vs accepted", None, None, "-", Status.PASS,
                            "identical bytes to the accepted file: the same artifact",
                            key="board.pi5.latency_vs_accepted")
    path(project).with_suffix(".tflite").unlink()
    absent = rows(device_check(project()))["board pi5: time vs accepted"]
    assert (absent.status, absent.note) == (
        Status.SKIPPED, "accepted artifact ptq_int8.tflite absent: a slower artifact cannot "
                        "be timed against it here")


def test_a_slower_file_timed_against_the_accepted_one_on_the_board_regresses(
        project, measured):
    accept(project, "n", b"TFL3 n, accepted", machines={PI5: device.record(board_run())})
    measured.runs[("n", "pi5")] = board_run(side=1.6)
    outcome = device_check(project())
    assert rows(outcome)["board pi5: time vs accepted"].status == Status.REGRESSION
    assert outcome.failed


# -- what each update mode writes -----------------------------------------------------------

def test_update_records_each_boards_class_in_the_baseline(project, measured):
    project.write(board_names=("pi5", "jetson"))
    outcome = device_check(project(update="missing"))
    assert outcome.update is not None and outcome.update.reason == "created"
    assert outcome.update.path == str(path(project))
    machines = json.loads(path(project).read_text())["machines"]
    assert machines == {PI5: recorded(board_run()), JETSON: recorded(board_run("jetson", JETSON))}
    # The rows that lacked a record are settled, and the missing baseline with them.
    settled = rows(outcome)
    assert settled["baseline"].status == Status.PASS
    assert settled["board pi5: latency_ratio"].note == "recorded now"
    again = device_check(project())
    assert not again.failed and again.update is None


def test_update_missing_adds_only_what_a_board_class_lacks(project, measured):
    accept(project, "n", b"TFL3 n", machines={PI5: {"latency_ratio": 0.7}})
    outcome = device_check(project(update="missing"))
    assert outcome.update is not None and outcome.update.reason == "updated"
    pi5 = json.loads(path(project).read_text())["machines"][PI5]
    assert pi5 == {"latency_ratio": 0.7, bl.MEMORY_FIGURE: 1_000_000}
    device_check(project(update="all"))
    pi5 = json.loads(path(project).read_text())["machines"][PI5]
    assert pi5 == recorded(board_run())


def test_only_a_mode_that_wants_it_writes_the_board_records(project, measured):
    accept(project, "n", b"TFL3 n")
    before = path(project).read_text()
    assert device_check(project()).update is None
    passing = device_check(project(update="failed"))
    assert not passing.failed and passing.update is None
    assert path(project).read_text() == before
    # A complete record: "missing" has nothing to add.
    accept(project, "n", b"TFL3 n", machines={PI5: device.record(board_run())})
    before = path(project).read_text()
    assert device_check(project(update="missing")).update is None
    assert path(project).read_text() == before
    # "failed" writes a failing board's figures.
    measured.runs[("n", "pi5")] = board_run(ratio=1.0)
    failing = device_check(project(update="failed"))
    assert failing.update is not None and failing.update.reason == "updated: was failing"
    recorded = json.loads(path(project).read_text())["machines"][PI5]["latency_ratio"]
    assert recorded == pytest.approx(1.0, abs=0.01)


def test_a_board_that_measured_nothing_records_nothing(project, measured):
    measured.runs[("n", "pi5")] = board_run(error="board pi5 (ci@pi5.local): unreachable")
    accept(project, "n", b"TFL3 n")
    before = path(project).read_text()
    outcome = device_check(project(update="all"))
    assert [(r.metric, r.status) for r in outcome.verdict.rows] == [
        ("board pi5", Status.SKIPPED)]
    assert outcome.update is None and path(project).read_text() == before
    # Nor is a baseline created for it: the check fails as missing, and stays missing.
    path(project).unlink()
    for mode in ("missing", "all"):
        outcome = device_check(project(update=mode))
        assert outcome.failed and outcome.update is None and not path(project).exists()
    accept(project, "n", b"TFL3 n")
    strict = device_check(project(strict=True))
    assert strict.failed and strict.verdict.rows[0].note == (
        "strict: not judged here: not judged: board pi5 (ci@pi5.local): unreachable")


def test_a_failing_result_is_not_recorded_for_a_board_unless_forced(project, measured):
    broken = Runner(rows={("n", R): make_row("n", accuracy_drop_pts=5.0)})
    outcome = device_check(project(broken, update="all"))
    assert outcome.refused.startswith("accuracy: accuracy drop (pts) 5")
    assert not path(project).exists()
    forced = device_check(project(broken, update="all", force=True))
    assert forced.update is not None and path(project).exists()


def test_a_different_accepted_file_the_board_did_not_time_adds_no_time_row(project, measured):
    accept(project, "n", b"TFL3 n, accepted", machines={PI5: device.record(board_run())})
    measured.runs[("n", "pi5")] = board_run(side=None)      # timed against float only
    got = rows(device_check(project()))
    assert "board pi5: time vs accepted" not in got
    assert got["board pi5: latency_ratio"].status == Status.PASS
