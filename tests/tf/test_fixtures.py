"""The committed fixtures are what the manifest says they are."""

import json

import numpy as np
import pytest

from compressgate.project import config
from compressgate.project.models import Dataset, file_sha256

pytestmark = pytest.mark.tf


def manifest(fixtures_dir):
    return json.loads((fixtures_dir / "manifest.json").read_text())


def load_manifest(fixtures_dir):
    return config.load(fixtures_dir / "manifest.json").specs


def test_expected_fixtures_are_bundled(fixtures_dir):
    assert set(load_manifest(fixtures_dir)) == {"digits_cnn", "digits_dscnn", "seq_rnn",
                                                "tabular_mlp"}


def test_files_match_manifest_sha256_and_stay_small(fixtures_dir):
    for name, entry in manifest(fixtures_dir)["models"].items():
        for filename, digest in entry["about"]["sha256"].items():
            path = fixtures_dir / filename
            assert file_sha256(path) == digest, f"{name}: {filename} differs from the manifest"
            assert path.stat().st_size < 2_000_000, f"{filename} is over 2 MB"


@pytest.mark.parametrize("name", ["digits_cnn", "digits_dscnn", "seq_rnn", "tabular_mlp"])
def test_float_accuracy_reproduces(fixtures_dir, name):
    from compressgate.backends import tf as backend

    spec = load_manifest(fixtures_dir)[name]
    entry = manifest(fixtures_dir)["models"][name]
    data = Dataset.load(spec.data_path)
    model = backend.load_model(spec.model_path)
    assert model.count_params() == entry["about"]["params"]
    top1 = np.argmax(model.predict(data.x_test, batch_size=spec.static_batch or 256,
                                   verbose=0), axis=-1)
    assert float(np.mean(top1 == data.y_test)) == pytest.approx(
        entry["about"]["float_test_accuracy"], abs=1e-6)


def test_splits_are_disjoint(fixtures_dir):
    for spec in load_manifest(fixtures_dir).values():
        data = Dataset.load(spec.data_path)
        rows = {split: {r.tobytes() for r in getattr(data, f"x_{split}")}
                for split in ("train", "calib", "test")}
        assert not rows["train"] & rows["test"], spec.name
        assert not rows["train"] & rows["calib"], spec.name
        assert not rows["calib"] & rows["test"], spec.name


def test_builder_reproduces_a_fixture_byte_for_byte_within_a_machine_class(fixtures_dir,
                                                                           tmp_path):
    """The data is the same file everywhere; the trained model is the same file on the
    machine class that built it (oneDNN's training kernels are ISA-specific), and on
    another class two builds still agree with each other byte for byte."""
    from compressgate.backends.tf.fixtures import build_all
    from compressgate.measure.machine import machine_class, this_machine

    build_all(tmp_path / "a", ["tabular_mlp"], log=lambda line: None)
    entry = manifest(fixtures_dir)["models"]["tabular_mlp"]
    data_file, model_file = entry["data"], entry["model"]
    assert file_sha256(tmp_path / "a" / data_file) == entry["about"]["sha256"][data_file]
    rebuilt = json.loads((tmp_path / "a" / "manifest.json").read_text())["models"]["tabular_mlp"]
    assert rebuilt["about"]["built_on"] == machine_class(this_machine())
    if file_sha256(tmp_path / "a" / model_file) == entry["about"]["sha256"][model_file]:
        return
    built_on = entry["about"].get("built_on")
    assert built_on != machine_class(this_machine()), (
        f"{model_file} differs from the one built on this very machine class")
    build_all(tmp_path / "b", ["tabular_mlp"], log=lambda line: None)
    assert file_sha256(tmp_path / "a" / model_file) == file_sha256(tmp_path / "b" / model_file)
    assert rebuilt["about"]["float_test_accuracy"] == pytest.approx(
        entry["about"]["float_test_accuracy"], abs=0.02)
