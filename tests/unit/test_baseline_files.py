"""Baseline files (``compressgate.baseline``): the exact text a team reviews in ``git diff``,
the messages that name a broken file, the update flow's merge and artifact rules, and the
diff a report prints. Written against the mutants that ``tox -e mutation`` found surviving
the other unit tests (see README "Testing")."""

import json
import platform
from pathlib import Path

import pytest

from compressgate.errors import BaselineError
from compressgate.gate import baselines as bl

ENV = {"tensorflow": "2.21.0", "python": "3.11.7", "machine": "x86_64 avx2"}
METRICS = {"converted": True, "accuracy": 0.97, "size_bytes": 1000, "gzip_bytes": 900,
           "sparsity": 0.0}


def test_environment_names_python_and_the_machine_class():
    env = bl.environment({"tensorflow": "2.21.0"})
    assert env["tensorflow"] == "2.21.0"
    assert env["python"] == platform.python_version()
    assert set(env) == {"tensorflow", "python", "machine"}


def test_baseline_json_is_indented_sorted_and_rounds_only_known_figures(tmp_path):
    baseline = bl.Baseline(tmp_path / "m" / "r.json", "m", "r",
                           {"accuracy": 0.97250000001, "mae": 0.123456789123,
                            "size_bytes": 1000.0, "tflite_sha256": "ab"},
                           {"python": "3.11.7"}, {"model": "cd"},
                           {"avx2": {"latency_ratio": 0.512345, "fingerprint": {"arch": "x"}}})
    assert baseline.to_json() == """{
  "environment": {
    "python": "3.11.7"
  },
  "inputs": {
    "model": "cd"
  },
  "machines": {
    "avx2": {
      "fingerprint": {
        "arch": "x"
      },
      "latency_ratio": 0.5123
    }
  },
  "metrics": {
    "accuracy": 0.9725,
    "mae": 0.123456789123,
    "size_bytes": 1000,
    "tflite_sha256": "ab"
  },
  "model": "m",
  "recipe": "r",
  "schema": 2
}
"""


def test_a_replaced_artifact_is_named_with_the_recorded_sha(tmp_path):
    path = tmp_path / "r.json"
    path.with_suffix(".tflite").write_bytes(b"TFL3 edited")
    sha = "0123456789abcdef" * 4
    stored = bl.Baseline(path, "m", "r", {"tflite_sha256": sha}, {})
    assert stored.accepted() == (None, "accepted artifact r.tflite is not the file its "
                                       "baseline records (sha256 0123456789ab): replaced by hand?")


def test_a_schema_1_baseline_keeps_latency_under_an_unclassified_machine(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "schema": 1, "model": "m", "recipe": "r",
        "metrics": {"accuracy": 0.9, "latency_ratio": 0.5},
        "environment": {"cpu": "Xeon", "tensorflow": "2.15.0"}}))
    stored = bl.load(path, "m", "r")
    assert stored.metrics == {"accuracy": 0.9}
    assert stored.environment == {"tensorflow": "2.15.0"}
    assert stored.machines == {"unclassified (unknown CPU, schema 1)": {"latency_ratio": 0.5}}


def test_an_unreadable_baseline_names_the_file_and_why(tmp_path):
    path = tmp_path / "r.json"
    path.mkdir()
    with pytest.raises(BaselineError) as info:
        bl.load(path, "m", "r")
    assert str(info.value) == f"{path}: unreadable baseline (Is a directory)"


@pytest.mark.parametrize("key", ["metrics", "environment", "inputs", "machines"])
def test_each_part_of_a_baseline_must_be_an_object(tmp_path, key):
    path = tmp_path / "r.json"
    doc = {"schema": 2, "model": "m", "recipe": "r", "metrics": {}, "environment": {}}
    path.write_text(json.dumps(doc | {key: []}))
    with pytest.raises(BaselineError) as info:
        bl.load(path, "m", "r")
    assert str(info.value) == f"{path}: '{key}' must be an object"
    path.write_text(json.dumps(doc | {"machines": {"avx2": 3}}))
    with pytest.raises(BaselineError) as info:
        bl.load(path, "m", "r")
    assert str(info.value) == f"{path}: machines.avx2 must be an object"


# -- the update flow ----------------------------------------------------------------------

def test_update_locks_beside_the_file_and_returns_what_it_wrote(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    old, new = bl.update(path, "m", "r", METRICS, ENV)
    assert old is None
    assert (new.path, new.model, new.recipe) == (path, "m", "r")
    assert (path.parent / ".r.json.lock").exists()


def test_update_replaces_an_unusable_file(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    old, _ = bl.update(path, "m", "r", METRICS, ENV)
    assert old is None
    assert bl.load(path, "m", "r").metrics == METRICS


def test_update_merges_figures_of_one_machine_class_and_records_its_versions(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", bl.Change(METRICS, machine={"latency_ratio": 0.5}), ENV)
    bl.update(path, "m", "r", bl.Change(machine={"peak_memory_bytes": 4096}), ENV)
    figures = bl.load(path, "m", "r").machine("x86_64 avx2")
    assert figures["latency_ratio"] == 0.5 and figures["peak_memory_bytes"] == 4096
    assert figures["versions"] == {"tensorflow": "2.21.0", "python": "3.11.7"}


def test_recording_a_failed_conversion_keeps_only_the_error_and_drops_the_rest(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", bl.Change(METRICS, machine={"latency_ratio": 0.5},
                                        artifact=b"TFL3"), ENV)
    assert path.with_suffix(".tflite").exists()
    _, new = bl.update(path, "m", "r", {"converted": False, "error": "boom"}, ENV)
    doc = json.loads(path.read_text())
    assert doc["metrics"] == {"converted": False, "error": "boom"}
    assert "machines" not in doc and new.machines == {}
    assert not path.with_suffix(".tflite").exists()
    # Recording it again, with no artifact left to remove, is fine.
    bl.update(path, "m", "r", {"converted": False, "error": "boom"}, ENV)


def test_the_artifact_is_kept_unless_the_conversion_failed(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    # A change that does not say "converted" records its artifact...
    bl.update(path, "m", "r", bl.Change({"accuracy": 0.9}, artifact=b"TFL3 a"), ENV)
    assert path.with_suffix(".tflite").read_bytes() == b"TFL3 a"
    # ...and a change without an artifact leaves the accepted one alone.
    bl.update(path, "m", "r", bl.Change(machine={"latency_ratio": 0.5}), ENV)
    assert path.with_suffix(".tflite").read_bytes() == b"TFL3 a"


# -- what changed -------------------------------------------------------------------------

def test_diff_rows_for_changed_added_removed_and_text_figures(tmp_path):
    path = tmp_path / "r.json"
    old = bl.Baseline(path, "m", "r", {"accuracy": 0.9, "size_bytes": 1000, "error": "a"},
                      {}, {"model": "0123456789abcdef"},
                      {"avx2": {"latency_ratio": 0.5, "fingerprint": {"arch": "x"}}})
    new = bl.Baseline(path, "m", "r", {"accuracy": 0.99, "gzip_bytes": 900, "error": "b"},
                      {}, {"model": "fedcba9876543210"},
                      {"avx2": {"latency_ratio": 0.5, "fingerprint": {"arch": "y"},
                                "versions": {"tensorflow": "2.21.0"}}})
    rows = bl.diff_rows(old, new)
    # What the change column says for a figure that appears or disappears is left to
    # the tests of that wording; here: which rows, their old and new values.
    assert [r[:3] for r in rows] == [
        ("accuracy", "0.9", "0.99"),
        ("error", "a", "b"),
        ("gzip_bytes", "-", "900"),
        ("inputs.model", "0123456789ab", "fedcba987654"),
        ("size_bytes", "1000", "-"),
    ]
    changes = {r[0]: r[3] for r in rows}
    # Accuracy moves in points (0.9 -> 0.99 is 9 points), like the page and the checks.
    assert (changes["accuracy"], changes["error"], changes["inputs.model"]) == \
        ("+9.00 pts", "", "")


@pytest.mark.parametrize(("name", "old", "new", "change"), [
    ("accuracy_drop_pts", 0.5, 1.25, "+0.75 pts"),
    ("accuracy_drop_pts", 0.0, -0.5, "-0.50 pts"),
    ("float_accuracy", 1.0, 0.0, "-100.00 pts"),
    ("machines.avx2.keras_agreement", 0.5, 0.4, "-10.00 pts"),
    ("size_bytes", 1000, 1100, "+10.00 %"),
    ("size_bytes", 0, 5, "+5"),
])
def test_accuracy_figures_change_in_points_and_others_in_percent(name, old, new, change):
    def baseline(value):
        return bl.Baseline(Path("r.json"), "m", "r", {name: value}, {}, {}, {})

    assert bl.diff_rows(baseline(old), baseline(new)) == [(name, str(old), str(new), change)]


def test_diff_markdown_lists_each_file_with_its_reason():
    assert bl.diff_markdown([]) == "# Baseline changes\n\nNo baseline changed.\n"
    text = bl.diff_markdown([
        ("b/m/r.json", "updated", [("accuracy", "0.9", "0.99", "+9.00 pts")]),
        ("a/m/r.json", "created", [("size_bytes", "-", "1000", "new"),
                                   ("gzip_bytes", "-", "900", "new")]),
    ])
    assert text == "\n".join([
        "# Baseline changes", "",
        "## a/m/r.json (created)", "", "| metric | old | new | change |", "|---|---|---|---|",
        "| size_bytes | - | 1000 | new |", "| gzip_bytes | - | 900 | new |", "",
        "## b/m/r.json (updated)", "", "| metric | old | new | change |", "|---|---|---|---|",
        "| accuracy | 0.9 | 0.99 | +9.00 pts |", "",
    ])


def test_diff_markdown_opens_with_what_each_machine_class_wrote():
    entries = [("a/m/r.json", "created", [("size_bytes", "-", "1000", "new"),
                                          ("gzip_bytes", "-", "900", "new")]),
               ("b/m/r.json", "missing", [("latency_ratio", "-", "0.4", "new")]),
               ("c/m/r.json", "missing", [("peak_memory_bytes", "-", "9", "new")])]
    text = bl.diff_markdown(entries, {"a/m/r.json": "avx2", "b/m/r.json": "avx2",
                                      "c/m/r.json": "vnni"})
    assert text.splitlines()[2:5] == ["Written on machine class avx2: 3 figures in 2 files.",
                                      "Written on machine class vnni: 1 figure in 1 file.",
                                      ""]
    assert text.endswith(bl.diff_markdown(entries).split("\n", 2)[2])
    # A file no run is known to have written is counted under "unknown".
    text = bl.diff_markdown(entries, {"a/m/r.json": "avx2"})
    assert text.splitlines()[2:4] == ["Written on machine class avx2: 2 figures in 1 file.",
                                      "Written on machine class unknown: 2 figures in 2 files."]


def test_a_failed_conversion_never_keeps_an_artifact(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    bl.update(path, "m", "r", bl.Change({"converted": False, "error": "boom"},
                                        artifact=b"TFL3"), ENV)
    assert not path.with_suffix(".tflite").exists()
