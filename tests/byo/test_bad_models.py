"""Models and data a new user gets wrong, and models built by code: each through the public
commands, each failure one line naming the file and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

BIN = Path(sys.executable).parent


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "compressgate"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=900, env={**os.environ, **(env or {})})


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def splits(rows: int = 60, features: int = 4, classes: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for name in ("train", "calib", "test"):
        x = rng.normal(size=(rows, features)).astype(np.float32)
        out[f"x_{name}"], out[f"y_{name}"] = x, (x[:, 0] > 0).astype(np.int64) % classes
    return out


BUILD = '''
import numpy as np
import tf_keras as keras


class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def objects():
    return {"Scale": Scale}


def model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax")(
        Scale()(keras.layers.Dense(64, activation="relu")(inputs)))
    m = keras.Model(inputs, outputs)
    m.compile(loss="sparse_categorical_crossentropy")
    return m


def data():
    from tests_data import splits
    return splits()
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "build.py").write_text(BUILD)
    (tmp_path / "tests_data.py").write_text(
        "import numpy as np\n" + textwrap.dedent(
            __import__("inspect").getsource(splits)))
    np.savez(tmp_path / "data.npz", **splits())
    return tmp_path


def test_keras3_keras_and_h5_files_are_accepted(project):
    """Keras 3's .keras and .h5 (the .h5 once failed with "cannot load as a Keras 2 model
    (... 'batch_shape' ...)"): init verifies the tf_keras twin and says so."""
    script = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import keras; "
              "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]); "
              "m.save('k3.keras'); m.save('k3.h5')")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", script], cwd=project, check=True, env=env,
                   capture_output=True, timeout=300)
    for name in ("k3.keras", "k3.h5"):
        result = cli("init", name, "--data", "data.npz", "--recipes", "float,ptq_dynamic",
                     "--force", cwd=project)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Keras 3 model: tf_keras twin verified on 60 test rows: top-1 identical, " \
            "largest difference" in result.stderr, result.stderr[-2000:]
        assert "batch_shape" not in result.stderr


def test_custom_objects_missing_then_given(project):
    subprocess.run([sys.executable, "-c", "import compressgate, build; "
                    "build.model().save('custom.keras')"], cwd=project, check=True,
                   capture_output=True, timeout=300)
    result = cli("init", "custom.keras", "--data", "data.npz", cwd=project)
    assert result.returncode == 2
    assert last_line(result) == (
        "compressgate: error: custom.keras: unknown custom object 'Scale'; set custom_objects "
        "= \"module:function\" (returning {name: class}) for this model in the config")
    result = cli("init", "custom.keras", "--data", "data.npz", "--custom-objects",
                 "build:objects", "--recipes", "float,ptq_dynamic", cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'custom_objects = "build:objects"' in (project / "compressgate.toml").read_text()
    result = cli("run", "--no-latency", "--jobs", "1", cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((project / "reports" / "summary.json").read_text())["results"]
    assert [r["converted"] for r in rows] == [True, True]


def test_data_that_does_not_fit_the_model(project):
    subprocess.run([sys.executable, "-c", "import compressgate, build; "
                    "build.model().save('custom.keras')"], cwd=project, check=True,
                   capture_output=True, timeout=300)
    np.savez(project / "wide.npz", **splits(features=5))
    (project / "compressgate.toml").write_text(
        '[models.custom]\nmodel = "custom.keras"\ndata = "wide.npz"\n'
        'custom_objects = "build:objects"\nrecipes = ["float"]\n')
    result = cli("run", "--no-latency", "--jobs", "1", cwd=project)
    assert result.returncode == 2
    assert last_line(result) == ("compressgate: error: wide.npz: rows have shape (5,), "
                                 "model 'custom' expects (4,)")


def test_model_and_data_built_by_functions(project):
    (project / "compressgate.toml").write_text(
        '[models.coded]\nmodel = "build:model"\ndata = "build:data"\n'
        'custom_objects = "build:objects"\nrecipes = ["float", "ptq_int8"]\n'
        '[models.coded.recipe_overrides.ptq_int8]\npromise = { min_size_ratio = 1.5 }\n')
    result = cli("run", "--no-latency", "--jobs", "1", cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((project / "reports" / "summary.json").read_text())["results"]
    assert [(r["recipe"], r["converted"]) for r in rows] == [("float", True),
                                                             ("ptq_int8", True)]
    assert rows[0]["keras_agreement"] == 1.0
    # The second run finds the results by the digest of what the functions return.
    again = cli("run", "--no-latency", "--jobs", "1", cwd=project)
    assert again.returncode == 0 and "coded x ptq_int8: cached" in again.stderr
