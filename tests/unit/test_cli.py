"""Bad input to ``compressgate run`` exits 2 with one line naming what was wrong."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from compressgate.cli.main import main
from compressgate.errors import UserInputError
from compressgate.project.models import Dataset


def run(capsys, *args):
    code = main(["run", *args])
    return code, capsys.readouterr().err.strip()


def test_unknown_model(capsys, fixtures_dir):
    code, err = run(capsys, "--config", str(fixtures_dir / "manifest.json"), "--models", "nope")
    assert code == 2
    assert err == ("compressgate: error: unknown model 'nope' (expected one of "
                   "digits_cnn, digits_dscnn, seq_rnn, tabular_mlp)")


def test_unknown_recipe(capsys, fixtures_dir):
    code, err = run(capsys, "--config", str(fixtures_dir / "manifest.json"),
                    "--recipes", "ptq_int3")
    assert code == 2 and "unknown recipe 'ptq_int3'" in err and "\n" not in err


def test_missing_manifest(capsys, tmp_path):
    code, err = run(capsys, "--config", str(tmp_path / "manifest.json"))
    assert code == 2 and err.endswith(f"{tmp_path / 'manifest.json'}: config file not found")


def test_malformed_manifest(capsys, tmp_path):
    (tmp_path / "manifest.json").write_text("{")
    code, err = run(capsys, "--config", str(tmp_path / "manifest.json"))
    assert code == 2 and "unreadable JSON" in err and "\n" not in err


def test_user_errors_exit_before_tensorflow_loads(fixtures_dir):
    code = ("import sys; from compressgate.cli.main import main; "
            f"rc = main(['run', '--config', {str(fixtures_dir / 'manifest.json')!r}, "
            "'--models', 'nope']); "
            "sys.exit(rc + 10 * ('tensorflow' in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2, result.stderr


def test_a_bad_worker_count_is_one_line_before_any_work(fixtures_dir, tmp_path):
    code = ("import sys; from compressgate.cli.main import main; "
            f"rc = main(['run', '--config', {str(fixtures_dir / 'manifest.json')!r}, "
            f"'--models', 'tabular_mlp', '--out', {str(tmp_path / 'out')!r}]); "
            "sys.exit(rc + 10 * ('tensorflow' in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env={**os.environ, "COMPRESSGATE_JOBS": "two"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "compressgate: error: $COMPRESSGATE_JOBS: expected a whole number of worker "
        "processes >= 1, got 'two'"]
    assert not (tmp_path / "out").exists()


def splits(**overrides):
    x = np.zeros((4, 3), np.float32)
    y = np.array([0, 1, 0, 1])
    base = {f"{p}_{s}": (x if p == "x" else y) for s in ("train", "calib", "test") for p in "xy"}
    return base | overrides


@pytest.mark.parametrize(("arrays", "message"), [
    (splits(x_calib=np.zeros((0, 3), np.float32), y_calib=np.zeros(0, int)),
     "split 'calib' is empty"),
    (splits(y_test=np.array([0, 1, 0])), "x_test has 4 rows but y_test has 3"),
    (splits(y_train=np.array([0.0, 1.0, 0.0, 1.0])), "y_train must be a 1-D array of integer"),
    (splits(x_test=np.zeros((4, 5), np.float32)), "x_test rows have shape (5,)"),
    ({"x_train": np.zeros((2, 2))}, "missing array 'y_train'"),
])
def test_bad_data_files_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserInputError) as excinfo:
        Dataset.load(path)
    assert str(path) in str(excinfo.value) and message in str(excinfo.value)


def test_truncated_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **splits())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserInputError, match=r"unreadable \.npz"):
        Dataset.load(path)


def test_labels_out_of_range_for_the_model():
    data = Dataset(**splits(y_test=np.array([0, 1, 7, 1])))
    with pytest.raises(UserInputError, match=r"^d.npz: y_test has labels in \[0, 7\], "
                                             r"model 'm' has 2 classes"):
        data.check_fits(input_shape=(None, 3), num_classes=2, model="m", data="d.npz")


def test_data_shape_must_fit_the_model():
    data = Dataset(**splits())
    with pytest.raises(UserInputError, match=r"^d.npz: rows have shape \(3,\), model 'm' "
                                             r"expects \(8, 8, 1\)$"):
        data.check_fits(input_shape=(None, 8, 8, 1), num_classes=2, model="m", data="d.npz")


def test_manifest_model_without_files(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"m": {}}}))
    code, err = run(capsys, "--config", str(tmp_path / "manifest.json"))
    assert code == 2 and "models.m.model: Field required" in err and "\n" not in err
