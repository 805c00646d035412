"""``compressgate merge``: shards' reports written by hand (through the gate's own report
writer) put back together, and every way shards can fail to add up refused in one line."""

import json
from pathlib import Path

import pytest

from compressgate.cli.main import main
from compressgate.gate import shards
from compressgate.gate.records import CheckRecord, Update
from compressgate.gate.session import Settings
from compressgate.pipeline.record import ResultRow
from compressgate.report.gate_run import write_reports
from compressgate.report.merge import merge

CASES = [("a", "float"), ("a", "ptq_int8"), ("b", "float"), ("b", "ptq_int8")]
ENV = {"tensorflow": "2.21.0", "python": "3.11.9", "machine": "x86_64 avx512 vnni"}


def records_for(case, failed=False):
    model, recipe = case
    row = ResultRow(model, recipe, True, accuracy=0.9, size_bytes=1000)
    return [CheckRecord(model, recipe, "conversion", False, row=row),
            CheckRecord(model, recipe, "accuracy", failed, message="drop" if failed else "",
                        reasons=["accuracy: drop 3 pts"] if failed else [])]


def write_shard(directory: Path, index: int, count: int = 2, *, env=ENV, exit_status=0,
                failed=(), cases=None, all_cases=CASES, update="none") -> Path:
    """A shard's summary.json and checks.json as its gate writes them (hand-made: the
    report pages are not needed by the merge). ``update`` "missing": every case records
    its latency ratio."""
    shard = shards.Shard(index, count)
    mine = cases if cases is not None else shards.select(all_cases, shard)
    records = [r for case in mine for r in records_for(case, case in failed)]
    if update != "none":
        records += [CheckRecord(m, r, "latency", False, update=Update(
            f"baselines/{m}/{r}.json", "missing", [("latency_ratio", "-", "0.5", "new")]))
            for m, r in mine]
    summary = {"schema": 1, "shard": str(shard), "cases": [list(c) for c in mine],
               "all_cases": [list(c) for c in all_cases], "update": update,
               "environment": env, "exit_status": exit_status,
               "machine_class": env["machine"],
               "results": [r.row.to_dict() for r in records if r.row]}
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps(summary))
    (directory / "checks.json").write_text(json.dumps(
        [{k: v for k, v in r.to_dict().items() if k != "row"} for r in records]))
    return directory


@pytest.fixture
def settings(tmp_path):
    return Settings(reports=tmp_path / "merged", baselines=tmp_path / "none")


def test_two_shards_merge_into_the_rows_and_verdicts_of_one_run(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2)
    whole = tmp_path / "whole"
    write_reports([r for c in CASES for r in records_for(c)],
                  Settings(reports=whole, baselines=tmp_path / "none"), CASES)
    merged = merge([two, one], settings)
    assert merged.ok and merged.problems == []
    got = json.loads((tmp_path / "merged" / "summary.json").read_text())
    want = json.loads((whole / "summary.json").read_text())
    assert got["results"] == want["results"]
    assert [s["shard"] for s in got["shards"]] == ["1/2", "2/2"]
    assert got["environment"] == ENV and got["exit_status"] == 0
    checks = json.loads((tmp_path / "merged" / "checks.json").read_text())
    assert len(checks) == 2 * len(CASES)
    assert (tmp_path / "merged" / "index.html").exists()


def test_a_failed_check_in_one_shard_fails_the_merge(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1, exit_status=1, failed=[CASES[0]])
    two = write_shard(tmp_path / "s2", 2)
    merged = merge([one, two], settings)
    assert merged.problems == [] and not merged.ok
    assert [(r.model, r.recipe, r.check) for r in merged.failed] == [("a", "float", "accuracy")]
    assert (tmp_path / "merged" / "summary.md").read_text().startswith("# compressgate: 1 FAIL")


def test_a_missing_shard_and_its_cases_are_named(tmp_path, settings):
    merged = merge([write_shard(tmp_path / "s1", 1)], settings)
    owed = shards.select(CASES, shards.Shard(2, 2))
    assert merged.problems == ["shard 2/2: no report given"] + [
        f"{m} x {r}: no result from any shard (shard 2/2 gates it)" for m, r in owed]
    assert not merged.ok
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert sorted((m["model"], m["recipe"]) for m in summary["missing"]) == sorted(owed)


def test_a_shard_that_stopped_short_leaves_its_cases_missing(tmp_path, settings):
    mine = shards.select(CASES, shards.Shard(2, 2))
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2, cases=mine[:1], exit_status=2)
    merged = merge([one, two], settings)
    assert merged.problems == [
        f"{two} (shard 2/2): pytest exited with 2 (interrupted)",
        f"{mine[1][0]} x {mine[1][1]}: no result from any shard (shard 2/2 gates it)"]


def test_shards_that_disagree_on_library_versions_are_refused(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2, env={**ENV, "tensorflow": "2.20.0"})
    merged = merge([one, two], settings)
    assert merged.problems == [f"tensorflow version differs: 2.21.0 in {one} (shard 1/2), "
                               f"2.20.0 in {two} (shard 2/2)"]
    assert not merged.ok


def test_shards_on_different_machine_classes_merge_and_say_which_class_judged_what(
        tmp_path, settings):
    avx2 = "x86_64 avx2"
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2, env={**ENV, "machine": avx2})
    merged = merge([one, two], settings)
    assert merged.ok and merged.problems == []
    second = shards.select(CASES, shards.Shard(2, 2))
    checks = json.loads((tmp_path / "merged" / "checks.json").read_text())
    assert {(c["model"], c["recipe"]): c["machine_class"] for c in checks} == {
        case: avx2 if case in second else ENV["machine"] for case in CASES}
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert summary["machine_class"] == f"{ENV['machine']} + {avx2}"
    assert [s["machine_class"] for s in summary["shards"]] == [ENV["machine"], avx2]
    assert "machine" not in summary["environment"]
    names = ", ".join(f"{m} x {r}" for m, r in second)
    line = f"machine class {avx2} judged shard 2/2 ({len(second)} cases: {names})"
    assert summary["judged_on"][avx2] == line.split(" judged ")[1]
    assert f"- {line}" in (tmp_path / "merged" / "summary.md").read_text()
    assert line in (tmp_path / "merged" / "index.html").read_text()


def test_a_merged_case_is_compared_with_the_record_of_the_class_that_judged_it(
        tmp_path, settings):
    """Latency recorded for both classes: a shard's row is read against its own."""
    from compressgate.gate import baselines
    from compressgate.pipeline.record import LatencyFigures
    from compressgate.report.changes import baseline_changes
    from compressgate.report.gate_run import _rows

    avx2 = "x86_64 avx2"
    record = CheckRecord("a", "ptq_int8", "conversion", False, machine_class=avx2,
                         row=ResultRow("a", "ptq_int8", True, accuracy=0.9, size_bytes=1000,
                                       latency=LatencyFigures(0.4)))
    directory = tmp_path / "baselines"
    path = baselines.path_for(directory, "a", "ptq_int8")
    path.parent.mkdir(parents=True)
    path.write_text(baselines.Baseline(
        path, "a", "ptq_int8", {"accuracy": 0.9, "size_bytes": 1000}, ENV,
        machines={avx2: {"latency_ratio": 0.4},
                  ENV["machine"]: {"latency_ratio": 1.2}}).to_json())
    changes = baseline_changes(_rows([record]), [record], directory, "hint",
                               machine=ENV["machine"])
    assert [c for c in changes if c["metric"] == "latency_ratio"] == []
    # Without the judging class it is read against the default class's record: moved.
    unjudged = [CheckRecord("a", "ptq_int8", "conversion", False, row=record.row)]
    changes = baseline_changes(_rows(unjudged), unjudged, directory, "hint",
                               machine=ENV["machine"])
    assert [(c["baseline"], c["now"]) for c in changes
            if c["metric"] == "latency_ratio"] == [("1.2", "0.4")]


def test_the_same_shard_twice_and_a_shard_of_another_matrix(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1)
    again = write_shard(tmp_path / "again", 1)
    other = write_shard(tmp_path / "other", 2, count=3)
    problems = merge([one, again, other], settings).problems
    assert problems[:2] == [f"shard 1/2 given twice: {one} and {again}",
                            f"{other} (shard 2/3): {one} (shard 1/2) is one of 2 shards, "
                            "this one of 3"]
    assert any("reported by" in p for p in problems)  # shard 1's cases, twice


def test_shards_of_different_projects(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2, all_cases=[*CASES, ("c", "float")])
    assert f"{two} (shard 2/2): gates another project than {one} (shard 1/2) (cases only " \
           "here: c x float; only there: none)" in merge([one, two], settings).problems


def test_a_shard_without_reports_or_from_compressgate_run(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1)
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"schema": 1, "results": []}))
    (run / "checks.json").write_text("[]")
    problems = merge([one, empty, run], settings).problems
    assert problems[0] == (f"{empty / 'summary.json'}: not found (did this shard's gate "
                           "run and write its reports?)")
    assert problems[1].startswith(f"{run / 'summary.json'}: no shard facts")


def test_a_test_outside_the_gate_that_failed_is_named(tmp_path, settings):
    one = write_shard(tmp_path / "s1", 1, exit_status=1)
    two = write_shard(tmp_path / "s2", 2)
    assert merge([one, two], settings).problems == [
        f"{one} (shard 1/2): pytest exited with 1 but no gate check failed: a test outside "
        "the gate failed"]


def test_cli_exit_codes_and_one_line_per_problem(tmp_path, capsys):
    (tmp_path / "compressgate.toml").write_text('baselines = "b"\nreports = "merged"\n')
    one = write_shard(tmp_path / "s1", 1)
    two = write_shard(tmp_path / "s2", 2)
    assert main(["merge", str(one), str(two), "--config", str(tmp_path)]) == 0
    assert (tmp_path / "merged" / "summary.json").exists()
    assert main(["merge", str(one), "--config", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "compressgate merge: shard 2/2: no report given"
    assert len(err) == 1 + len(shards.select(CASES, shards.Shard(2, 2)))


def test_a_shard_that_owns_no_case_still_counts(tmp_path, settings):
    one_case = CASES[:1]
    one = write_shard(tmp_path / "s1", 1, all_cases=one_case)
    empty = write_shard(tmp_path / "s2", 2, all_cases=one_case, exit_status=5)
    assert shards.select(one_case, shards.Shard(2, 2)) == []
    merged = merge([one, empty], settings)
    assert merged.ok and merged.problems == []


def test_records_made_by_shards_on_two_classes_are_one_diff_naming_each_class(
        tmp_path, settings):
    """The default-branch flow of the CI templates: every shard records what its class
    lacks; the merged baseline-diff.md says which class wrote how much."""
    avx2 = "x86_64 avx2"
    one = write_shard(tmp_path / "s1", 1, update="missing")
    two = write_shard(tmp_path / "s2", 2, env={**ENV, "machine": avx2}, update="missing")
    assert merge([one, two], settings).ok
    diff = (tmp_path / "merged" / "baseline-diff.md").read_text()
    first, second = (len(shards.select(CASES, shards.Shard(k, 2))) for k in (1, 2))
    assert diff.splitlines()[2:4] == [
        f"Written on machine class {avx2}: {second} figures in {second} files.",
        f"Written on machine class {ENV['machine']}: {first} figures in {first} files."]
    assert diff.count("(missing)") == len(CASES)
