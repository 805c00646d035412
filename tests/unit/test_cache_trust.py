"""A restored result cache is input the run did not compute: a reused entry is measured
again from its ``.tflite``, and an entry whose file is not the one its record names is
refused (with a warning) and computed again. No TensorFlow: a canned ``.tflite``."""

import hashlib
import json
from functools import partial
from pathlib import Path

import pytest

from compressgate.backends.faults import FaultyBackend
from compressgate.pipeline.cache import CacheEntryRefused, ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config

MODEL, RECIPE = "tabular_mlp", "ptq_int8"
TFLITE = Path(__file__).resolve().parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"


@pytest.fixture
def make_runner(fixtures_dir, tmp_path):
    specs = {MODEL: config.load(fixtures_dir / "manifest.json").specs[MODEL]}

    def make():  # a new run (process) over the same cache directory
        return Runner(specs, ResultCache(tmp_path / "cache"), isolate=False,
                      backend_factory=partial(FaultyBackend, {}, TFLITE))
    return make


@pytest.fixture
def entry(make_runner):
    """The cache entry of MODEL x RECIPE after a first run computed it."""
    runner = make_runner()
    first = runner.row(MODEL, RECIPE)
    assert not first.cached
    key = runner.cache_key(MODEL, runner.recipe(MODEL, RECIPE))
    return runner.cache.directory / key, first


def edit_record(entry_dir: Path, edit) -> None:
    path = entry_dir / "result.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_an_intact_entry_is_reused_and_measured_again(make_runner, entry):
    _, first = entry
    again = make_runner().row(MODEL, RECIPE)
    assert again.cached
    figures = ("accuracy", "size_bytes", "gzip_bytes", "tflite_sha256")
    assert [getattr(again, k) for k in figures] == [getattr(first, k) for k in figures]


def test_an_entry_of_another_machine_class_is_not_reused(make_runner, entry, monkeypatch):
    """A cache restored from a runner of another class (hosted runners mix them, and the
    CI templates fall back to any earlier cache) holds that class's fine-tuned bytes: they
    are computed again here, not recorded as this build's by a baseline update."""
    from compressgate.measure import machine

    here = machine.machine_class(machine.this_machine())
    monkeypatch.setattr(machine, "machine_class", lambda _: here + " (oneDNN <= AVX2)")
    other = make_runner()
    assert not other.row(MODEL, RECIPE).cached
    theirs = other.cache_key(MODEL, other.recipe(MODEL, RECIPE))
    monkeypatch.undo()
    mine = make_runner()
    assert mine.row(MODEL, RECIPE).cached  # this class's own entry is still there
    assert entry[0].name == mine.cache_key(MODEL, mine.recipe(MODEL, RECIPE)) != theirs
    assert (other.cache.directory / theirs / "model.tflite").is_file()


def test_target_figures_of_another_machine_class_are_measured_again(make_runner,
                                                                    monkeypatch):
    """Kernel agreement is XNNPACK's, whose kernels follow the ISA: figures cached by a
    runner of another class are not this machine's."""
    from compressgate.measure import machine, targets

    measured = []
    real = targets.measure
    monkeypatch.setattr(targets, "measure", lambda *a, **k: measured.append(1) or real(*a, **k))
    first = make_runner().targets(MODEL, RECIPE)
    assert measured == [1] and first.kernel_agreement is not None
    assert make_runner().targets(MODEL, RECIPE) == first and measured == [1]  # cached
    here = machine.machine_class(machine.this_machine())
    monkeypatch.setattr(machine, "machine_class", lambda _: here + " (oneDNN <= AVX2)")
    assert make_runner().targets(MODEL, RECIPE).kernel_agreement is not None
    assert measured == [1, 1]


def test_an_edited_record_decides_nothing(make_runner, entry):
    entry_dir, first = entry

    def flatter(doc):  # claims a perfect score from a tiny file
        doc["measurement"].update(accuracy=1.0, size_bytes=10, gzip_bytes=5,
                                  top1=[0] * len(doc["measurement"]["top1"]))
    edit_record(entry_dir, flatter)
    row = make_runner().row(MODEL, RECIPE)
    assert row.cached  # the file is the recorded one: reused, but measured from it
    assert (row.accuracy, row.size_bytes, row.gzip_bytes) == \
        (first.accuracy, TFLITE.stat().st_size, first.gzip_bytes)
    assert row.accuracy < 1.0


def test_a_swapped_file_is_refused_and_computed_again(make_runner, entry):
    entry_dir, first = entry
    (entry_dir / "model.tflite").write_bytes(TFLITE.read_bytes() + b"\0" * 64)
    runner = make_runner()
    with pytest.warns(CacheEntryRefused, match=r"model.tflite does not hash to its record's "
                                               r"sha256 [0-9a-f]{12}\.\.\.; computing it again"):
        row = runner.row(MODEL, RECIPE)
    assert not row.cached and row.tflite_sha256 == first.tflite_sha256
    # The recomputed result replaced the bad entry.
    assert (entry_dir / "model.tflite").read_bytes() == TFLITE.read_bytes()
    assert make_runner().row(MODEL, RECIPE).cached


def test_a_record_without_a_file_digest_is_refused(make_runner, entry):
    entry_dir, _ = entry
    edit_record(entry_dir, lambda doc: doc.pop("_tflite_sha256"))
    with pytest.warns(CacheEntryRefused, match="its record names no sha256 for model.tflite"):
        assert not make_runner().row(MODEL, RECIPE).cached


def test_a_file_swapped_with_its_digest_is_measured_as_the_file_it_is(make_runner, entry):
    # Whoever rewrites both the file and its digest gets the figures of their own file:
    # the row is that file's (the baseline check compares it with the accepted one).
    entry_dir, first = entry
    swapped = TFLITE.read_bytes() + b"\0" * 64
    (entry_dir / "model.tflite").write_bytes(swapped)
    edit_record(entry_dir, lambda doc: doc.update(
        _tflite_sha256=hashlib.sha256(swapped).hexdigest()))
    row = make_runner().row(MODEL, RECIPE)
    assert row.cached and row.size_bytes == len(swapped) != first.size_bytes
    assert row.tflite_sha256 == hashlib.sha256(swapped).hexdigest()


def test_a_refused_entry_warns_once_per_run(tmp_path):
    cache = ResultCache(tmp_path)
    cache.put("k", {"x": 1}, b"bytes")
    (tmp_path / "k" / "model.tflite").write_bytes(b"other")
    with pytest.warns(CacheEntryRefused) as caught:
        assert cache.get("k") is None and cache.get("k") is None
    assert len(caught) == 1
    cache.put("k", {"x": 1}, None)  # a failed conversion: no file to vouch for
    assert cache.get("k") == ({"x": 1}, None)


# --- compressgate cache-key: the CI cache key -------------------------------------------

def project(tmp_path, fixtures_dir, recipes='["float", "ptq_int8"]'):
    import shutil

    for name in ("tabular_mlp.keras", "breast_cancer.npz"):
        shutil.copy(fixtures_dir / name, tmp_path / name)
    (tmp_path / "compressgate.toml").write_text(
        f"recipes = {recipes}\n[models.tabular_mlp]\nmodel = \"tabular_mlp.keras\"\n"
        "data = \"breast_cancer.npz\"\n")
    return tmp_path


def cache_key(capsys, directory):
    from compressgate.cli.main import main

    assert main(["cache-key", "--config", str(directory)]) == 0
    return capsys.readouterr().out.strip()


def test_the_ci_cache_key_moves_exactly_with_the_results(tmp_path, fixtures_dir, capsys,
                                                        monkeypatch):
    from compressgate.measure import machine

    first = cache_key(capsys, project(tmp_path, fixtures_dir))
    assert len(first) == 32 and cache_key(capsys, tmp_path) == first  # stable
    (tmp_path / "notes.txt").write_text("nothing a result depends on")
    assert cache_key(capsys, tmp_path) == first
    project(tmp_path, fixtures_dir, recipes='["float", "ptq_int8", "ptq_dynamic"]')
    more = cache_key(capsys, tmp_path)
    assert more != first  # another recipe: another result
    with (tmp_path / "breast_cancer.npz").open("ab") as data:
        data.write(b"\0")
    changed = cache_key(capsys, tmp_path)
    assert changed not in (first, more)  # other data bytes
    monkeypatch.setattr(machine, "machine_class", lambda _: "another class")
    assert cache_key(capsys, tmp_path) != changed  # fine-tuned bytes depend on the class
