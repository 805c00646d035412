"""End to end through pytester on a tiny real model: the gate's whole lifecycle."""

import json

import pytest

pytestmark = pytest.mark.tf

GATE_TEST = "def test_gate(compressgate_check):\n    compressgate_check()\n"


@pytest.fixture
def gate(pytester, tiny_fixtures, tmp_path):
    # Not "test_gate": the suite's own tests/gate/test_gate.py is already imported.
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    baselines, reports = tmp_path / "baselines", tmp_path / "reports"

    def run(*args, recipes="float,ptq_int8"):
        return pytester.runpytest_inprocess(
            "-p", "no:cacheprovider",
            "--compressgate-config", str(tiny_fixtures / "manifest.json"),
            "--compressgate-baselines", str(baselines), "--compressgate-reports", str(reports),
            "--compressgate-recipes", recipes, *args)

    run.baselines, run.reports, run.fixtures = baselines, reports, tiny_fixtures
    return run


def snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*.json"))}


@pytest.mark.timing
def test_lifecycle_missing_create_clean_drift_update(gate):
    # 1. No baselines: each baseline-backed check fails and says how to create it.
    result = gate()
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines(["*missing; create it with: *--compressgate-update=missing*"])
    assert not gate.baselines.exists()

    # 2. Create the missing ones: they are written and listed in the diff.
    result = gate("--compressgate-update=missing")
    result.assert_outcomes(passed=8)
    created = snapshot(gate.baselines)
    assert sorted(created) == ["tiny_mlp/float.json", "tiny_mlp/ptq_int8.json"]
    diff = (gate.reports / "baseline-diff.md").read_text()
    assert "tiny_mlp/ptq_int8.json (created)" in diff and "| accuracy |" in diff
    machine = json.loads((gate.reports / "summary.json").read_text())["machine_class"]
    assert f"Written on machine class {machine}: " in diff and " figures in 2 files." in diff
    machines = json.loads(created["tiny_mlp/ptq_int8.json"])["machines"]
    assert [sorted(m)[:3] for m in machines.values()] == [
        ["fingerprint", "latency_process_ratios", "latency_ratio"]]
    # The latency record spans processes: this one and fresh ones, one median each.
    assert [len(m["latency_process_ratios"]) for m in machines.values()] == [5]
    assert (gate.baselines / "tiny_mlp" / "ptq_int8.tflite").read_bytes()[4:8] == b"TFL3"

    # 3. An unchanged tree passes and writes nothing.
    result = gate()
    result.assert_outcomes(passed=8)
    assert snapshot(gate.baselines) == created
    summary = json.loads((gate.reports / "summary.json").read_text())
    assert {r["recipe"] for r in summary["results"]} == {"float", "ptq_int8"}

    # 4. A baseline better than reality (the accepted file scores less here than it was
    # accepted with) fails the right check with a table.
    path = gate.baselines / "tiny_mlp" / "ptq_int8.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["accuracy"] = round(doc["metrics"]["accuracy"] + 0.05, 6)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    result = gate()
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines([
        "*_ test_gate[[]tiny_mlp-ptq_int8-baseline[]] _*",
        "*metric*measured*baseline/limit*tolerance*verdict*",
        "*accuracy*regression*",
    ])
    result.stdout.fnmatch_lines(["*Failed (regressions*", "*tiny_mlp-ptq_int8-baseline*"])
    md = (gate.reports / "summary.md").read_text()
    assert md.startswith("# compressgate: 1 FAIL, 1 pass\n")
    changes = md[md.index("## Change against baselines"):md.index("## Results")]
    assert "| tiny_mlp | ptq_int8 | accuracy |" in changes and "pts | regression |" in changes
    page = (gate.reports / "index.html").read_text()
    assert '<span class="tag c-regression">regression</span>' in page

    # 5. Update only the failed ones: that file is rewritten, the other left alone.
    float_before = (gate.baselines / "tiny_mlp" / "float.json").read_bytes()
    result = gate("--compressgate-update=failed")
    result.assert_outcomes(passed=8)
    assert json.loads(path.read_text())["metrics"]["accuracy"] == pytest.approx(
        doc["metrics"]["accuracy"] - 0.05, abs=1e-6)
    assert (gate.baselines / "tiny_mlp" / "float.json").read_bytes() == float_before
    result.stdout.fnmatch_lines(["*tiny_mlp/ptq_int8.json (updated: was failing)*",
                                 "*accuracy:*->*"])
    gate().assert_outcomes(passed=8)


def test_missing_mode_does_not_touch_existing_baselines(gate):
    gate("--compressgate-update=missing").assert_outcomes(passed=8)
    path = gate.baselines / "tiny_mlp" / "ptq_int8.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["size_bytes"] = 1  # drifted, but not missing
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    result = gate("--compressgate-update=missing")
    result.assert_outcomes(passed=7, failed=1)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("content", "message"), [
    ("{oops", "malformed JSON"),
    ('{"schema": 7}', "baseline schema 7"),
    ('{"schema": 1, "model": "tiny_mlp", "recipe": "float"}', "missing key 'metrics'"),
])
def test_unusable_baseline_fails_naming_the_file(gate, content, message):
    gate("--compressgate-update=missing").assert_outcomes(passed=8)
    path = gate.baselines / "tiny_mlp" / "float.json"
    path.write_text(content)
    result = gate()
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines([f"*compressgate: {path}: *{message}*"])
    assert path.read_text() == content  # never overwritten outside the update flow


def test_refuses_to_record_a_result_that_fails_the_absolute_checks(gate, tiny_fixtures):
    # A manifest override that promises an impossible size makes the absolute check fail.
    manifest = json.loads((tiny_fixtures / "manifest.json").read_text())
    manifest["models"]["tiny_mlp"]["recipe_overrides"]["ptq_int8"] = {
        "promise": {"max_drop_pts": -100.0}}
    bad = tiny_fixtures.parent / "tiny-bad"
    bad.mkdir(exist_ok=True)
    for name in ("tiny_mlp.keras", "tiny.npz"):
        (bad / name).write_bytes((tiny_fixtures / name).read_bytes())
    (bad / "manifest.json").write_text(json.dumps(manifest))
    result = gate("--compressgate-update=all", "--compressgate-config", str(bad / "manifest.json"))
    result.stdout.fnmatch_lines(["*refused to record the baseline: accuracy*"])
    assert not (gate.baselines / "tiny_mlp" / "ptq_int8.json").exists()
    result = gate("--compressgate-update=all", "--compressgate-force",
                  "--compressgate-config", str(bad / "manifest.json"))
    assert (gate.baselines / "tiny_mlp" / "ptq_int8.json").exists()


TIMELINE = '''
import json, os, time

from compressgate.gate.session import GateSession

_run_check = GateSession.run_check


def run_check(self, model, recipe, check):
    start = time.monotonic()
    try:
        return _run_check(self, model, recipe, check)
    finally:
        with open(os.environ["TIMELINE"], "a") as out:
            out.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER", "main"), check,
                                  start, time.monotonic()]) + "\\n")


GateSession.run_check = run_check
'''


@pytest.mark.timing
def test_xdist_gives_the_same_verdicts_as_a_serial_run(gate, pytester, monkeypatch,
                                                      tmp_path):
    """... and times latency while the other worker waits (measure.quiet): a conftest logs
    every check's span; no check of the other worker overlaps a latency check."""
    gate("--compressgate-update=missing").assert_outcomes(passed=8)
    path = gate.baselines / "tiny_mlp" / "float.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["gzip_bytes"] = doc["metrics"]["gzip_bytes"] // 2  # a planted drift
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    serial = gate()
    serial.assert_outcomes(passed=7, failed=1)
    pytester.makeconftest(TIMELINE)
    monkeypatch.setenv("TIMELINE", str(tmp_path / "timeline.jsonl"))
    parallel = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider",
        "--compressgate-config", str(gate.fixtures / "manifest.json"),
        "--compressgate-baselines", str(gate.baselines),
        "--compressgate-reports", str(gate.reports), "--compressgate-recipes",
        "float,ptq_int8")
    parallel.assert_outcomes(passed=7, failed=1)
    for result in (serial, parallel):
        result.stdout.fnmatch_lines(["*FAILED*tiny_mlp-float-baseline*"])
    spans = [json.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert {worker for worker, *_ in spans} == {"gw0", "gw1"}
    latency = [s for s in spans if s[1] == "latency"]
    assert len(latency) == 1
    overlaps = [(timed, other) for timed in latency for other in spans
                if other[0] != timed[0] and other[2] < timed[3] and timed[2] < other[3]]
    assert overlaps == []


def test_settings_from_pyproject(pytester, tiny_fixtures, tmp_path):
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    pytester.makefile(".toml", pyproject=f"""
[tool.compressgate]
include = ["{tiny_fixtures / 'manifest.json'}"]
baselines = "{tmp_path / 'bl'}"
reports = "{tmp_path / 'reports'}"
recipes = ["float"]
latency = false
command = "make gate"
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)  # float: conversion, accuracy; no baseline
    result.stdout.fnmatch_lines(
        ["*missing; create it with: make gate --compressgate-update=missing*"])


def test_unknown_pyproject_key_is_a_usage_error(pytester, tiny_fixtures):
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    pytester.makefile(".toml", pyproject="[tool.compressgate]\nbaseline = 'x'\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: [[]tool.compressgate[]] baseline: Extra inputs are not permitted*"])


def _config_with(pytester, tiny_fixtures, tmp_path, **model):
    entry = {"model": str(tiny_fixtures / "tiny_mlp.keras"),
             "data": str(tiny_fixtures / "tiny.npz"), **model}
    pytester.makefile(".json", cfg=json.dumps({"models": {"tiny": entry}}))
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--compressgate-config", "cfg.json",
        "--compressgate-baselines", str(tmp_path / "bl"),
        "--compressgate-reports", str(tmp_path / "reports"), "--compressgate-recipes", "float")


def test_a_missing_model_file_is_one_usage_line(pytester, tiny_fixtures, tmp_path):
    result = _config_with(pytester, tiny_fixtures, tmp_path, model="gone.keras")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert text.count("file not found") == 1, text
    result.stderr.fnmatch_lines(["*compressgate: model 'tiny': model *gone.keras: file not "
                                 "found (set models.tiny.model in *cfg.json)"])


def test_data_that_does_not_fit_the_model_stops_the_run_once(pytester, tiny_fixtures,
                                                             tmp_path):
    import numpy as np

    data = dict(np.load(tiny_fixtures / "tiny.npz"))
    data = {k: v[:, :5] if k.startswith("x_") else v for k, v in data.items()}
    np.savez(tmp_path / "narrow.npz", **data)
    result = _config_with(pytester, tiny_fixtures, tmp_path, data=str(tmp_path / "narrow.npz"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert text.count("expects") == 1, text
    assert "Traceback" not in text and "During handling" not in text, text


def test_the_plugin_counts_a_check_that_failed_before_recording(pytester, tiny_fixtures,
                                                               tmp_path):
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef broken():\n"
                          "    raise RuntimeError('boom')\n")
    pytester.makepyfile(test_broken_gate="def test_gate(compressgate_check, broken):\n"
                                         "    compressgate_check()\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--compressgate-config",
        str(tiny_fixtures / "manifest.json"), "--compressgate-baselines", str(tmp_path / "b"),
        "--compressgate-reports", str(tmp_path / "r"), "--compressgate-recipes", "float",
        "test_broken_gate.py")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 3, outcomes  # float: conversion, accuracy, baseline
    result.stdout.fnmatch_lines(["3 checks: 3 failed*"])
