"""The closing summary and reports of a gate run, from hand-made records."""

import json

from compressgate.gate.records import CheckRecord
from compressgate.gate.session import Settings
from compressgate.pipeline.record import LatencyFigures, ResultRow
from compressgate.report.gate_run import summary_lines, write_reports


def record(check, failed=False, stale=(), update=None, expected=False, **extra):
    # Through JSON, as the plugin sends records from xdist workers.
    return CheckRecord.from_dict(json.loads(json.dumps(
        {"model": "m", "recipe": "r"} | {"check": check, "failed": failed, "stale": list(stale),
         "update": update, "expected": expected, **extra})))


def test_summary_lists_failures_stale_and_expected_apart():
    lines = summary_lines([
        record("accuracy", failed=True),
        record("baseline", stale=["size_bytes"]),
        record("conversion", failed=True, expected=True),
    ], written=[])
    text = "\n".join(lines)
    assert lines[0] == ("3 checks: 1 failed, 1 stale baselines, 0 baselines written, "
                        "0 comparisons not judged here")
    assert "  m-r-accuracy" in text
    assert "  m-r-baseline: size_bytes" in text
    assert "Declared unsupported" in text and "  m-r" in text


def test_updates_to_one_file_from_two_checks_are_merged(tmp_path):
    diff_a = [["accuracy", "-", "0.9", "new"]]
    diff_b = [["latency_ratio", "-", "0.5", "new"]]
    records = [record("baseline", update=["b/m/r.json", "created", diff_a]),
               record("latency", update=["b/m/r.json", "updated", diff_b])]
    lines = summary_lines(records, written=[])
    assert "b/m/r.json (created)" in lines
    assert "  accuracy: - -> 0.9  new" in lines and "  latency_ratio: - -> 0.5  new" in lines
    settings = Settings(reports=tmp_path, update="all")
    written = write_reports(records, settings)
    diff = (tmp_path / "baseline-diff.md").read_text()
    assert tmp_path / "baseline-diff.md" in written
    assert diff.count("## b/m/r.json (created)") == 1


def test_rows_get_this_runs_latency(tmp_path):
    row = ResultRow("m", "r", True, accuracy=0.9)
    latency = LatencyFigures(0.5, 0.4, 0.6, 1.0, 2.0, 42, 0.0)
    records = [record("conversion", row=row.to_dict()),
               record("latency", latency=latency.to_dict())]
    write_reports(records, Settings(reports=tmp_path))
    rows = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert rows == [row.with_latency(latency).to_dict()
                    | {"verdict": "pass", "reasons": [], "skipped": []}]
    assert rows[0]["latency_ratio"] == 0.5
    assert "| m | r | pass |" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "baseline-diff.md").exists()


def test_failures_come_first(tmp_path):
    records = [record("conversion", row={"model": "a", "recipe": "ok", "converted": True}),
               record("conversion", row={"model": "z", "recipe": "bad", "converted": True}),
               record("accuracy", failed=True, model="z", recipe="bad")]
    write_reports(records, Settings(reports=tmp_path))
    rows = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert [(r["model"], r["verdict"]) for r in rows] == [("z", "FAIL: accuracy"), ("a", "pass")]
