"""Models users bring that tfmot or the converter used to refuse: a Bidirectional(GRU) at
a dynamic batch, a Conv1D CNN under QAT, a residual SeparableConv2D model loaded from
``.h5``; and ``diagnose`` on a ``module:function`` model. (A Bidirectional(GRU) through
the README's flow, float to int8: tests/byo/test_new_user.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import newuser
import numpy as np
import pytest

from compressgate.project.metrics import Metric
from compressgate.project.models import Dataset, ModelSpec
from compressgate.project.sources import Source
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf


def spec_for(directory: Path, model: str = "model.keras", **kwargs) -> ModelSpec:
    return ModelSpec("m", Source(model, directory), Source("data.npz", directory),
                     metric=Metric(), **kwargs)


@pytest.fixture(scope="module")
def bigru_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bigru")
    newuser.bigru(directory, epochs=2)
    return directory


@pytest.fixture(scope="module")
def conv1d_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("conv1d")
    newuser.conv1d(directory, epochs=3)
    return directory


def test_init_sees_the_gru_inside_bidirectional_and_why_qat_cannot_apply(bigru_dir):
    from compressgate.backends import tf as backend

    info = backend.describe(backend.load_model(bigru_dir / "model.keras"))
    assert info["recurrent"] == ["bidirectional (GRU)"]
    assert info["qat_error"].startswith("layer bidirectional (Bidirectional): tfmot's 8-bit "
                                        "QAT scheme has no QuantizeConfig for Bidirectional")


def test_recurrent_layers_are_found_in_every_wrapper():
    from compressgate.backends.tf.env import deterministic, import_keras
    from compressgate.backends.tf.recurrent import recurrent_layers

    deterministic()
    keras = import_keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 3)),
        layers.TimeDistributed(layers.Dense(4), name="per_step"),
        layers.RNN(layers.GRUCell(4), return_sequences=True, name="cell_rnn"),
        layers.TimeDistributed(layers.Dense(2), name="after"),
        layers.Bidirectional(layers.LSTM(4), name="bi"),
    ])
    assert recurrent_layers(model) == ["cell_rnn", "bi (LSTM)"]


def test_without_static_batch_the_failure_names_the_setting(bigru_dir):
    from compressgate.backends import tf as backend

    artifact = backend.compress(spec_for(bigru_dir), get_recipe("float"),
                                Dataset.load(bigru_dir / "data.npz"))
    assert artifact.error == (
        "converter failed on recurrent layer bidirectional (GRU) at a dynamic batch "
        "(TensorList ops need a static one): set static_batch = 1 for model m in the config")


def test_a_conv1d_model_gets_qat_with_compressgates_configs(conv1d_dir):
    from compressgate.backends import tf as backend
    from compressgate.measure import flatbuffer

    spec = spec_for(conv1d_dir)
    assert backend.describe(backend.load_model(spec))["qat_error"] is None
    recipe = get_recipe("qat_int8").with_overrides({"finetune": {"epochs": 1}})
    artifact = backend.compress(spec, recipe, Dataset.load(conv1d_dir / "data.npz"))
    assert artifact.error is None
    info = flatbuffer.inspect(artifact.tflite)
    assert "CONV_2D" in info.op_names and info.float_ops == []  # integer only


def test_what_nobody_can_quantize_is_refused_in_one_line_naming_the_layer():
    from compressgate.backends.protocol import RecipeUnsupported
    from compressgate.backends.tf import qat
    from compressgate.backends.tf.env import deterministic, import_keras

    deterministic()
    keras = import_keras()
    model = keras.Sequential([keras.Input((6,)), keras.layers.Embedding(10, 4, name="emb"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(RecipeUnsupported) as info:
        qat.quantize(model)
    assert str(info.value) == (
        "tfmot QAT cannot quantize this model: layer emb (Embedding): tfmot's 8-bit QAT "
        "scheme has no QuantizeConfig for Embedding, nor has compressgate (it adds "
        f"{', '.join(qat.COVERED)})")


def test_qat_applies_to_a_residual_separable_conv_model_loaded_from_h5(tmp_path):
    """Loaded in a fresh session, its layer names clash with those tfmot's SeparableConv2D
    transform generates: tfmot alone wires the wrong tensors into the Add."""
    from compressgate.backends.tf import qat
    from compressgate.backends.tf.env import deterministic, import_keras, import_tfmot

    newuser.mini_xception(tmp_path / "mx.h5")
    deterministic()
    keras = import_keras()
    with pytest.raises(ValueError, match="Inputs have incompatible shapes"):
        import_tfmot().quantization.keras.quantize_model(
            keras.models.load_model(tmp_path / "mx.h5"))
    deterministic()
    model = keras.models.load_model(tmp_path / "mx.h5")
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 1)).astype(np.float32)
    quantized = qat.quantize(model)
    assert quantized.predict(x, verbose=0).shape == (4, 7)


def test_diagnose_loads_a_module_function_model_as_compress_does(conv1d_dir):
    (conv1d_dir / "build.py").write_text(
        "import compressgate\nimport tf_keras as keras\n"
        f"def model():\n    return keras.models.load_model({str(conv1d_dir)!r} + "
        "'/model.keras')\n")
    # In a fresh process, as `compressgate diagnose` runs: inside the full suite the
    # debugger's XNNPACK reshape failed (node 17) after other tests, never alone.
    code = (
        "from pathlib import Path\n"
        "from compressgate.backends import tf as backend\n"
        "from compressgate.project.metrics import Metric\n"
        "from compressgate.project.models import Dataset, ModelSpec\n"
        "from compressgate.project.sources import Source\n"
        "from compressgate.recipes import get_recipe\n"
        f"d = Path({str(conv1d_dir)!r})\n"
        "spec = ModelSpec('m', Source('build:model', d), Source('data.npz', d), "
        "metric=Metric())\n"
        "rows, names = backend.diagnose(spec, get_recipe('ptq_int8'), "
        "Dataset.load(d / 'data.npz'))\n"
        "print(names[0], len(rows), sorted({'op_name', 'tensor_name'} & set(rows[0])))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    name, count, keys = result.stdout.split(maxsplit=2)
    assert name == "conv1d" and int(count) > 0 and "'op_name', 'tensor_name'" in keys
