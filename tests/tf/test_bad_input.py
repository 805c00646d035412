"""Bad model files and data that do not fit: one line naming the file, exit 2."""

import json
import shutil

import numpy as np
import pytest

from compressgate.cli.main import main

pytestmark = pytest.mark.tf


@pytest.fixture
def fixture_copy(fixtures_dir, tmp_path):
    """A one-model fixtures directory (tabular_mlp) that a test may break."""
    manifest = json.loads((fixtures_dir / "manifest.json").read_text())
    entry = manifest["models"]["tabular_mlp"]
    for name in (entry["model"], entry["data"]):
        shutil.copy(fixtures_dir / name, tmp_path / name)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"models": {"tabular_mlp": entry}}))
    return tmp_path


def run(capsys, fixtures, tmp_path):
    code = main(["run", "--config", str(fixtures / "manifest.json"), "--recipes", "float",
                 "--jobs", "1",
                 "--no-latency", "--no-cache", "--out", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


def test_truncated_keras_file(fixture_copy, tmp_path, capsys):
    model = fixture_copy / "tabular_mlp.keras"
    model.write_bytes(model.read_bytes()[:500])
    code, line = run(capsys, fixture_copy, tmp_path)
    assert code == 2
    assert line.startswith(f"compressgate: error: {model}: cannot load as a Keras 2 model")


def test_corrupt_keras_file(fixture_copy, tmp_path, capsys):
    model = fixture_copy / "tabular_mlp.keras"
    data = model.read_bytes()
    model.write_bytes(data[:2000] + bytes(len(data) - 4000) + data[-2000:])
    code, line = run(capsys, fixture_copy, tmp_path)
    assert code == 2
    assert line == (f"compressgate: error: {model}: cannot load as a Keras 2 model "
                    "(Bad CRC-32 for file 'config.json')")


def test_missing_model_file(fixture_copy, tmp_path, capsys):
    (fixture_copy / "tabular_mlp.keras").unlink()
    code, line = run(capsys, fixture_copy, tmp_path)
    assert code == 2 and "tabular_mlp.keras: cannot read" in line


def test_data_that_does_not_fit_the_model(fixture_copy, tmp_path, capsys):
    data = dict(np.load(fixture_copy / "breast_cancer.npz"))
    data = {k: (v[:, :10] if k.startswith("x_") else v) for k, v in data.items()}
    np.savez(fixture_copy / "breast_cancer.npz", **data)
    code, line = run(capsys, fixture_copy, tmp_path)
    assert code == 2
    assert line == (f"compressgate: error: {fixture_copy / 'breast_cancer.npz'}: rows have "
                    "shape (10,), model 'tabular_mlp' expects (30,)")


def test_labels_out_of_range(fixture_copy, tmp_path, capsys):
    data = dict(np.load(fixture_copy / "breast_cancer.npz"))
    data["y_test"] = data["y_test"] + 3
    np.savez(fixture_copy / "breast_cancer.npz", **data)
    code, line = run(capsys, fixture_copy, tmp_path)
    assert code == 2 and line == (
        f"compressgate: error: {fixture_copy / 'breast_cancer.npz'}: y_test has labels in "
        "[3, 4], model 'tabular_mlp' has 2 classes (expected 0..1)")
