"""Baseline files: stable format, validation naming the file, atomic merged updates."""

import json

import pytest

from compressgate.errors import BaselineError
from compressgate.gate import baselines as bl

ENV = {"tensorflow": "2.21.0", "python": "3.11.7", "machine": "x86_64 avx2"}
METRICS = {"converted": True, "accuracy": 0.97250000001, "size_bytes": 201544.0,
           "gzip_bytes": 150000, "sparsity": 0.0}


def test_missing_baseline_is_none(tmp_path):
    assert bl.load(tmp_path / "m" / "r.json", "m", "r") is None


def test_update_writes_sorted_rounded_json_and_reads_back(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    old, new = bl.update(path, "m", "r", METRICS, ENV)
    assert old is None
    text = path.read_text()
    doc = json.loads(text)
    assert doc["schema"] == bl.SCHEMA
    assert doc["metrics"]["accuracy"] == 0.9725
    assert doc["metrics"]["size_bytes"] == 201544 and '"size_bytes": 201544,' in text
    assert list(doc) == sorted(doc)
    assert bl.load(path, "m", "r").metrics == new.metrics


def test_update_merges_keys_from_separate_checks(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", METRICS, ENV)
    bl.update(path, "m", "r", bl.Change(machine={"latency_ratio": 0.51234567}), ENV)
    bl.update(path, "m", "r", bl.Change(machine={"peak_memory_bytes": 4096.0}),
              ENV | {"machine": "x86_64 avx2+avx512_vnni"})
    stored = bl.load(path, "m", "r")
    assert stored.machine("x86_64 avx2")["latency_ratio"] == 0.5123
    assert stored.machine("x86_64 avx2+avx512_vnni")["peak_memory_bytes"] == 4096
    assert "latency_ratio" not in stored.machine("x86_64 avx2+avx512_vnni")
    assert stored.metrics["accuracy"] == 0.9725
    assert stored.machine("x86_64 avx2")["fingerprint"]["arch"]


def test_metrics_given_as_a_plain_dict_are_this_builds_record(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", METRICS, ENV | {"tensorflow": "2.20.0"})
    bl.update(path, "m", "r", {"size_bytes": 201000}, ENV)
    assert bl.load(path, "m", "r").environment == ENV
    # Machine figures alone leave the build that recorded the file as it is.
    bl.update(path, "m", "r", bl.Change(machine={"latency_ratio": 0.5}),
              ENV | {"tensorflow": "2.22.0"})
    assert bl.load(path, "m", "r").environment == ENV


def test_the_accepted_artifact_is_written_with_its_baseline_and_checked_on_read(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    tflite = b"TFL3 accepted"
    sha = __import__("hashlib").sha256(tflite).hexdigest()
    bl.update(path, "m", "r", bl.Change(METRICS | {"tflite_sha256": sha},
                                                 artifact=tflite), ENV)
    assert path.with_suffix(".tflite").read_bytes() == tflite
    assert bl.load(path, "m", "r").accepted() == (tflite, "")
    path.with_suffix(".tflite").write_bytes(b"TFL3 edited by hand")
    data, why = bl.load(path, "m", "r").accepted()
    assert data is None and "is not the file its baseline records" in why
    path.with_suffix(".tflite").unlink()
    assert bl.load(path, "m", "r").accepted() == (None, "accepted artifact r.tflite absent")


def test_a_schema_1_baseline_keeps_its_machine_figures_under_no_machine_class(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "schema": 1, "model": "m", "recipe": "r", "environment": {"cpu": "AMD EPYC"},
        "metrics": {**METRICS, "latency_ratio": 1.2, "latency_cpu": "AMD EPYC",
                    "peak_memory_bytes": 4096}}))
    stored = bl.load(path, "m", "r")
    assert "latency_ratio" not in stored.metrics and "latency_cpu" not in stored.metrics
    assert stored.machines == {"unclassified (AMD EPYC, schema 1)": {
        "latency_ratio": 1.2, "peak_memory_bytes": 4096}}


def test_rewriting_identical_content_leaves_the_file_alone(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", METRICS, ENV)
    before = path.stat().st_mtime_ns
    bl.update(path, "m", "r", METRICS, ENV)
    assert path.stat().st_mtime_ns == before


def test_no_temporary_files_are_left_behind(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", METRICS, ENV)
    bl.update(path, "m", "r", bl.Change(artifact=b"TFL3"), ENV)
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [
        "r.json", "r.tflite"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "malformed JSON at line 1"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema": 99, "model": "m"}', "baseline schema 99, this compressgate reads 1 and 2"),
    ('{"schema": 2, "model": "m", "recipe": "r", "metrics": {}, "environment": {},'
     ' "machines": {"x86_64 avx2": {"latency_ratio": "fast"}}}',
     "machines.x86_64 avx2.latency_ratio must be a number"),
    ('{"schema": 2, "model": "m", "recipe": "r", "metrics": {}, "environment": {},'
     ' "machines": {"x86_64 avx2": {"latency_process_ratios": [0.5, 0]}}}',
     "machines.x86_64 avx2.latency_process_ratios must be a non-empty list of positive numbers"),
    ('{"schema": 2, "model": "m", "recipe": "r", "metrics": {}, "environment": {},'
     ' "machines": {"x86_64 avx2": {"latency_process_ratios": [0.5, true]}}}',
     "machines.x86_64 avx2.latency_process_ratios must be a non-empty list of positive numbers"),
    ('{"schema": 1, "model": "m", "recipe": "r", "metrics": {}}', "missing key 'environment'"),
    ('{"schema": 1, "model": "x", "recipe": "r", "metrics": {}, "environment": {}}',
     "records x x r, expected m x r"),
    ('{"schema": 1, "model": "m", "recipe": "r", "metrics": {"accuracy": "high"},'
     ' "environment": {}}', "metrics.accuracy must be a number"),
])
def test_unusable_baselines_name_the_file(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(BaselineError) as excinfo:
        bl.load(path, "m", "r")
    assert str(path) in str(excinfo.value) and message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_diff_rows_show_old_new_and_change(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    old, _ = bl.update(path, "m", "r", METRICS, ENV)
    old, new = bl.update(path, "m", "r", {**METRICS, "size_bytes": 220000}, ENV)
    rows = bl.diff_rows(old, new)
    assert rows == [("size_bytes", "201544", "220000", "+9.16 %")]
    assert "| size_bytes | 201544 | 220000 | +9.16 % |" in bl.diff_markdown(
        [(str(path), "updated", rows)])


def test_environment_changes(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    _, new = bl.update(path, "m", "r", METRICS, ENV)
    assert new.build_changes({**ENV, "tensorflow": "2.22.0", "machine": "x86_64 avx512f"}) \
        == ("machine class x86_64 avx2 (now x86_64 avx512f)", "tensorflow 2.21.0 (now 2.22.0)")
    assert new.build_changes(ENV) == ()


def test_written_files_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = bl.path_for(tmp_path, "m", "r")
        bl.update(path, "m", "r", bl.Change(METRICS, artifact=b"TFL3"), ENV)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct(path.with_suffix(".tflite").stat().st_mode & 0o777) == oct(0o644)


def test_diff_says_new_removed_and_moves_from_zero(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    _, old = bl.update(path, "m", "r", METRICS | {"gzip_ratio": 2.0}, ENV)
    doc = json.loads(path.read_text())
    del doc["metrics"]["gzip_ratio"]
    doc["metrics"]["sparsity"] = 0.5
    doc["metrics"]["size_ratio"] = 4.0
    path.write_text(json.dumps(doc))
    new = bl.load(path, "m", "r")
    rows = {name: change for name, _, _, change in bl.diff_rows(old, new)}
    assert rows == {"gzip_ratio": "removed", "size_ratio": "new", "sparsity": "+0.5"}


def test_diff_of_a_figure_that_falls_from_zero_or_is_a_flag(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    _, old = bl.update(path, "m", "r", METRICS | {"size_ratio": 0.0}, ENV)
    doc = json.loads(path.read_text())
    doc["metrics"].update({"size_ratio": -1.5, "converted": False, "sparsity": 0.25})
    path.write_text(json.dumps(doc))
    rows = {n: (a, b, c) for n, a, b, c in bl.diff_rows(old, bl.load(path, "m", "r"))}
    assert rows["size_ratio"] == ("0.0", "-1.5", "-1.5")
    assert rows["converted"] == ("True", "False", "")
    assert rows["sparsity"] == ("0.0", "0.25", "+0.25")
