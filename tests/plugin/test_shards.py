"""The gate in two shards, merged, against one unsharded run on a tiny real model."""

import json

import pytest

from compressgate.cli.main import main
from compressgate.measure import machine

pytestmark = pytest.mark.tf

GATE_TEST = "def test_gate(compressgate_check):\n    compressgate_check()\n"
RECIPES = "float,ptq_int8,ptq_dynamic"
# Facts of the run, not of the tree: measured in each run (peak memory), timed where a
# result is computed (the capped shard computes its own: its class keys other cache
# entries), or bookkeeping.
VOLATILE = {"peak_memory_bytes", "memory_error", "cached", "created", "convert_seconds",
            "finetune_seconds"}


def rows(directory):
    doc = json.loads((directory / "summary.json").read_text())
    assert "missing" not in doc
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in doc["results"]]


def verdicts(directory):
    return sorted((c["model"], c["recipe"], c["check"], c["failed"], tuple(c["reasons"]),
                   tuple(c["skipped"]), tuple(c["stale"]), c["expected"])
                  for c in json.loads((directory / "checks.json").read_text()))


def test_two_shards_on_two_machine_classes_merged_give_the_verdicts_and_rows_of_one_run(
        pytester, tiny_fixtures, tmp_path, monkeypatch):
    """Shard 2 runs under a oneDNN ISA cap, which is part of the machine class (a hosted
    pool that mixes CPU generations): each shard judges against its own class's record."""
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    baselines = tmp_path / "baselines"

    def gate(reports, *args, cap=None):
        with monkeypatch.context() as env:
            if cap:  # the fingerprint is read once per process: read it anew
                env.setenv("ONEDNN_MAX_CPU_ISA", cap)
                env.setattr(machine, "_THIS", None)
            return pytester.runpytest_inprocess(
                "-p", "no:cacheprovider", "--compressgate-no-latency",
                "--compressgate-config", str(tiny_fixtures / "manifest.json"),
                "--compressgate-baselines", str(baselines),
                "--compressgate-reports", str(tmp_path / reports), "--compressgate-recipes",
                RECIPES, *args)

    gate("setup", "--compressgate-update=missing").assert_outcomes(passed=3 + 2 * 4)
    # The second class records what it misses (its peak memory), nothing else moves.
    gate("setup2", "--compressgate-update=missing", cap="SSE41").assert_outcomes(passed=11)
    gate("whole").assert_outcomes(passed=11)
    first = gate("shard1", "--compressgate-shard", "1/2")
    second = gate("shard2", "--compressgate-shard", "2/2", cap="SSE41")
    # Every check of a case in the same shard: float (3 checks) + one recipe (4), and the
    # other recipe (4); each shard computes the float reference it needs.
    assert sorted([first.parseoutcomes()["passed"], second.parseoutcomes()["passed"]]) == [4, 7]
    shard_one = json.loads((tmp_path / "shard1" / "summary.json").read_text())
    assert shard_one["shard"] == "1/2" and len(shard_one["all_cases"]) == 3
    assert len(shard_one["cases"]) == 2 and shard_one["exit_status"] == 0
    capped = json.loads((tmp_path / "shard2" / "summary.json").read_text())["machine_class"]
    assert capped.endswith("(oneDNN <= SSE41)") and capped != shard_one["machine_class"]

    merged = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "shard2"), str(tmp_path / "shard1"), "--config",
                 str(tiny_fixtures / "manifest.json"), "--baselines", str(baselines),
                 "--out", str(merged)]) == 0
    assert rows(merged) == rows(tmp_path / "whole")
    assert verdicts(merged) == verdicts(tmp_path / "whole")
    summary = json.loads((merged / "summary.json").read_text())
    assert set(summary["judged_on"]) == {shard_one["machine_class"], capped}
    page = (merged / "summary.md").read_text().replace("\\<", "<")  # markdown's escape
    assert f"machine class {capped} judged shard 2/2" in page
    assert f"machine class {shard_one['machine_class']} judged shard 1/2" in page


def test_a_bad_shard_is_a_usage_error(pytester, tiny_fixtures, monkeypatch):
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    monkeypatch.setenv("COMPRESSGATE_SHARD", "3/2")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--compressgate-config", str(tiny_fixtures / "manifest.json"))
    result.stderr.fnmatch_lines(["*compressgate: $COMPRESSGATE_SHARD: expected K/N with "
                                 "1 <= K <= N (e.g. 1/2), got '3/2'"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_shard_without_cases_still_writes_its_reports(pytester, tiny_fixtures, tmp_path):
    pytester.makepyfile(test_tiny_gate=GATE_TEST)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--compressgate-config", str(tiny_fixtures / "manifest.json"),
        "--compressgate-recipes", "float", "--compressgate-shard", "2/2",
        "--compressgate-reports", str(tmp_path / "empty"))
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    summary = json.loads((tmp_path / "empty" / "summary.json").read_text())
    assert (summary["shard"], summary["cases"], summary["all_cases"]) == \
        ("2/2", [], [["tiny_mlp", "float"]])
