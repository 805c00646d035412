"""Corrupt, truncated and ill-fitting inputs: one line naming the file, field or model.

No TensorFlow: ``.tflite`` files go through the flatbuffer reader and LiteRT, ``.npz``
files through ``Dataset.load``. (Keras files and labels against a real model are in
tests/tf/test_bad_input.py; baselines are fuzzed in test_baseline_fuzz.py.)
"""

import json
from pathlib import Path

import numpy as np
import pytest

from compressgate import Recipe, get_recipe
from compressgate.errors import BaselineError, UserInputError
from compressgate.gate import baselines as bl
from compressgate.measure import litert
from compressgate.project.models import Dataset, ModelSpec

TFLITE = Path(__file__).resolve().parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"
NPZ = Path(__file__).resolve().parent.parent.parent / "fixtures" / "breast_cancer.npz"


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(UserInputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def measure_bytes(data: bytes) -> str:
    x = np.zeros((4, 30), np.float32)
    return error_of(litert.measure, data, x, np.zeros(4, int), name="tabular_mlp x ptq_int8")


def test_the_intact_tflite_measures():
    m = litert.measure(TFLITE.read_bytes(), np.zeros((4, 30), np.float32), np.zeros(4, int))
    assert m.size_bytes == TFLITE.stat().st_size and m.input_dtype == "int8"


@pytest.mark.parametrize("cut", [8, 100, 4000, -1])
def test_truncated_tflite(cut):
    data = TFLITE.read_bytes()
    assert measure_bytes(data[:cut]).startswith(
        "tabular_mlp x ptq_int8: corrupt or truncated TFLite flatbuffer (")


def test_tflite_without_identifier():
    assert measure_bytes(b"\x00" * 100) == (
        "tabular_mlp x ptq_int8: not a TFLite flatbuffer (missing the TFL3 identifier)")


def test_tflite_with_zeroed_body():
    data = TFLITE.read_bytes()
    corrupt = data[:16] + bytes(len(data) - 32) + data[-16:]
    assert measure_bytes(corrupt) == (
        "tabular_mlp x ptq_int8: LiteRT cannot load the model: Model provided is schema "
        "version 0 not equal to supported version 3.")


@pytest.fixture
def npz(tmp_path):
    return tmp_path / "data.npz"


def save(path, **changes):
    arrays = dict(np.load(NPZ)) | changes
    np.savez(path, **arrays)
    return path


def test_truncated_npz(npz):
    npz.write_bytes(NPZ.read_bytes()[:1000])
    assert error_of(Dataset.load, npz) == (
        f"{npz}: unreadable .npz (not a zip archive: truncated, or another format)")


def test_npz_with_a_damaged_member(npz):
    data = bytearray(NPZ.read_bytes())
    data[len(data) // 3: len(data) // 3 + 64] = bytes(64)
    npz.write_bytes(bytes(data))
    assert error_of(Dataset.load, npz) == (
        f"{npz}: unreadable .npz (Bad CRC-32 for file 'x_train.npy')")


def test_empty_calibration_split(npz):
    arrays = dict(np.load(NPZ))
    save(npz, x_calib=arrays["x_calib"][:0], y_calib=arrays["y_calib"][:0])
    assert error_of(Dataset.load, npz) == f"{npz}: split 'calib' is empty"


def test_missing_split(npz):
    arrays = dict(np.load(NPZ))
    del arrays["y_test"]
    np.savez(npz, **arrays)
    assert error_of(Dataset.load, npz) == (
        f"{npz}: missing array 'y_test' (expected x_/y_ for train, calib, test)")


def test_float_labels(npz):
    save(npz, y_train=np.zeros(len(np.load(NPZ)["x_train"]), np.float32))
    assert error_of(Dataset.load, npz) == (
        f"{npz}: y_train must be a 1-D array of integer class ids, got float32 with "
        f"shape ({len(np.load(NPZ)['x_train'])},)")


@pytest.mark.parametrize("offset", [-1, 2])
def test_labels_out_of_range(npz, offset):
    y = np.load(NPZ)["y_calib"].copy()
    y[0] = offset if offset < 0 else 2
    data = Dataset.load(save(npz, y_calib=y))
    low, high = int(y.min()), int(y.max())
    assert error_of(data.check_fits, input_shape=(None, 30), num_classes=2,
                    model="tabular_mlp", data="d.npz") == (
        f"d.npz: y_calib has labels in [{low}, {high}], model 'tabular_mlp' has 2 "
        "classes (expected 0..1)")


def test_unknown_recipe_field_top_level():
    assert error_of(Recipe.from_dict, {"name": "x", "quantisation": "int8"}).startswith(
        "recipe: unknown field 'quantisation' (expected one of ")


def test_unknown_recipe_field_in_a_manifest_override(tmp_path):
    spec = ModelSpec("m", tmp_path / "m.keras", tmp_path / "m.npz",
                     recipe_overrides={"ptq_int8": {"promise": {"min_size_ration": 3}}})
    assert error_of(spec.recipe, get_recipe("ptq_int8")).startswith(
        "model 'm', recipe ptq_int8.promise: unknown field 'min_size_ration' (expected one of ")


GOOD = {"schema": 1, "model": "m", "recipe": "r", "metrics": {"accuracy": 0.9},
        "environment": {}}


@pytest.mark.parametrize(("text", "expected"), [
    ('{"schema": 1,', "malformed JSON at line 1 (Expecting property name enclosed in "
                      "double quotes)"),
    ("", "malformed JSON at line 1 (Expecting value)"),
    (json.dumps(GOOD | {"schema": 3}), "baseline schema 3, this compressgate reads 1 and 2"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "metrics"}), "missing key 'metrics'"),
    (json.dumps(GOOD | {"recipe": "other"}), "records m x other, expected m x r"),
    (json.dumps(GOOD | {"metrics": {"peak_memory_bytes": "big"}}),
     "metrics.peak_memory_bytes must be a number"),
    ("[1, 2]", "expected a JSON object, got list"),
])
def test_bad_baseline_files(tmp_path, text, expected):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(BaselineError) as info:
        bl.load(path, "m", "r")
    assert str(info.value) == f"{path}: {expected}"
