"""Keras 3 models as model sources: the verified tf_keras twin, the Keras 3 converter path
for a model with a layer tf_keras has no class for, and the one line for each."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from compressgate.project.metrics import Metric
from compressgate.project.models import ModelSpec
from compressgate.project.sources import Source
from compressgate.recipes import get_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import newuser

pytestmark = pytest.mark.tf


def spec_for(directory: Path, model: str = "model.keras") -> ModelSpec:
    return ModelSpec("m", Source(model, directory), Source("data.npz", directory),
                     metric=Metric())


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> Path:
    """The Dense-only Keras 3 helper model, saved as .keras and as Keras 3 .h5, and a
    module:function that loads it."""
    directory = tmp_path_factory.mktemp("keras3_dense")
    newuser.keras3_dense(directory)
    from compressgate.backends.tf.env import import_keras3

    keras = import_keras3()
    keras.saving.load_model(directory / "model.keras").save(directory / "model.h5")
    (directory / "keras3_source.py").write_text(
        "import keras\n\n\ndef model():\n"
        f"    return keras.saving.load_model({str(directory / 'model.keras')!r})\n")
    return directory


def test_keras3_keras_h5_and_function_sources_give_a_verified_twin(dense):
    from compressgate.backends import tf as backend
    from compressgate.backends.tf import keras3
    from compressgate.project import kerasfile

    data = spec_for(dense).load_data()
    # A Keras 3 .h5 is recognised as Keras 3 (it once failed with "cannot load as a
    # Keras 2 model (... 'batch_shape' ...)").
    assert kerasfile.keras3_version(dense / "model.h5").startswith("3.")
    for text in ("model.keras", "model.h5", "keras3_source:model"):
        loaded = backend.load_any(spec_for(dense, text))
        assert isinstance(loaded, keras3.Keras3Model) and loaded.blocker is None, text
        verified = keras3.verify(loaded, data.x_test)
        assert verified.mismatch is None and verified.top1_same == len(data.x_test), text
        assert verified.relative <= keras3.TOLERANCE
        twin = backend.load_model(spec_for(dense, text))  # the twin is a tf_keras model
        assert type(twin).__module__.startswith("tf_keras"), text


def test_digest_covers_the_keras3_models_weights(dense):
    from compressgate.backends import tf as backend

    spec = spec_for(dense, "keras3_source:model")
    first = backend.model_digest(spec)
    assert backend.model_digest(spec) == first
    (dense / "keras3_changed.py").write_text(
        "import keras\n\n\ndef model():\n"
        f"    m = keras.saving.load_model({str(dense / 'model.keras')!r})\n"
        "    w = m.layers[-1].get_weights()\n"
        "    m.layers[-1].set_weights([w[0] * 1.001, w[1]])\n"
        "    return m\n")
    assert backend.model_digest(spec_for(dense, "keras3_changed:model")) != first


def test_every_recipe_family_converts_on_the_twin(dense):
    """float (agreement measured on the Keras 3 model), ptq_int8, qat_int8, prune_int8."""
    from compressgate.backends import tf as backend
    from compressgate.backends.tf.env import import_keras3

    spec = spec_for(dense)
    data = spec.load_data()
    expected = np.argmax(import_keras3().saving.load_model(dense / "model.keras").predict(
        data.x_test, verbose=0), axis=-1)
    for name in ("float", "ptq_int8", "qat_int8", "prune_int8"):
        artifact = backend.compress(spec, get_recipe(name), data)
        assert artifact.error is None and artifact.tflite, (name, artifact.error)
        if name == "float":
            np.testing.assert_array_equal(artifact.keras_top1, expected)


def test_a_twin_that_differs_names_the_first_layer(dense, monkeypatch):
    """A planted twin fault (one Dense kernel scaled): the recipes that need tf_keras fail
    with one line naming that layer; ptq_int8 converts the Keras 3 model itself."""
    from compressgate.backends import tf as backend
    from compressgate.backends.tf import keras3

    build = keras3.build_twin
    planted = []

    def faulty(model):
        twin = build(model)
        kernel, bias = twin.layers[1].get_weights()
        twin.layers[1].set_weights([kernel * 1.5, bias])
        planted.append(twin.layers[1].name)
        return twin

    monkeypatch.setattr(keras3, "build_twin", faulty)
    spec = spec_for(dense)
    data = spec.load_data()
    artifact = backend.compress(spec, get_recipe("qat_int8"), data)
    assert artifact.tflite is None
    assert artifact.error.startswith(f"{dense / 'model.keras'}: the tf_keras twin differs "
                                     "from the Keras 3 model on the test split (top-1 same "
                                     "on "), artifact.error
    assert artifact.error.endswith(f"first differing layer: {planted[0]!r} (Dense)"), \
        artifact.error
    assert "\n" not in artifact.error
    assert backend.compress(spec, get_recipe("ptq_int8"), data).tflite


NO_TWIN = '''
import keras


@keras.saving.register_keras_serializable(package="mine")
class Gain(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def build(kind):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="first")(inputs)
    if kind == "ops":
        h = keras.ops.tanh(h)
    elif kind == "custom":
        h = Gain(name="gain")(h)
    else:
        h = keras.layers.RMSNormalization(name="rms")(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(inputs, outputs)
'''


@pytest.mark.parametrize(("kind", "named"), [
    ("ops", "layer 'tanh' (a keras.ops call, Tanh) has no tf_keras twin"),
    ("custom", "layer 'gain' (custom class mine>Gain) has no tf_keras twin"),
    ("rms", "layer 'rms' (RMSNormalization, not a tf_keras layer) has no tf_keras twin"),
])
def test_a_layer_without_a_twin_is_named(tmp_path, monkeypatch, kind, named):
    """Read from the file without TensorFlow (the gate's strict xfails) and by the backend
    alike; the converter recipes still convert the Keras 3 model."""
    from compressgate.backends import tf as backend
    from compressgate.backends.tf import keras3

    (tmp_path / "layers3.py").write_text(NO_TWIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import layers3

    layers3.build(kind).save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", **{f"{p}_{s}": rng.normal(size=(40, 6)).astype(
        np.float32) if p == "x" else rng.integers(0, 3, 40) for s in ("train", "calib",
                                                                       "test") for p in "xy"})
    spec = spec_for(tmp_path)
    # Keras numbers an ops layer by how many came before it in the process ('tanh_1').
    assert re.fullmatch(re.escape(named).replace("'tanh'", r"'tanh(_\d+)?'"),
                        spec.keras3_blocker)
    named = spec.keras3_blocker
    assert spec.unsupported(get_recipe("qat_int8")) == (
        f"unsupported for this Keras 3 model: qat_int8 needs tf_keras (tfmot), and {named}; "
        "float, ptq_* and lq_* apply")
    assert spec.unsupported(get_recipe("ptq_int8")) is None
    loaded = backend.load_any(tmp_path / "model.keras")
    assert isinstance(loaded, keras3.Keras3Model) and loaded.blocker == named
    data = spec.load_data()
    assert backend.compress(spec, get_recipe("prune_int8"), data).error == \
        spec.unsupported(get_recipe("prune_int8"))
    if kind == "ops":  # the Keras 3 converter path, with the recipe's int8 settings
        artifact = backend.compress(spec, get_recipe("ptq_int8"), data)
        assert artifact.error is None and artifact.tflite


def test_a_subclassed_keras3_model_is_one_line(tmp_path, monkeypatch):
    from compressgate.backends import tf as backend
    from compressgate.errors import UserInputError

    (tmp_path / "keras3_subclassed.py").write_text(
        "import keras\n\n\nclass Tiny(keras.Model):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.dense = keras.layers.Dense(2)\n\n"
        "    def call(self, x):\n        return self.dense(x)\n\n\n"
        "def model():\n    return Tiny()\n")
    spec = spec_for(tmp_path, "keras3_subclassed:model")
    with pytest.raises(UserInputError) as caught:
        backend.load_any(spec)
    assert str(caught.value) == (
        "keras3_subclassed:model: a subclassed keras.Model (Tiny) has no layer graph; "
        "compressgate takes Keras 3 Sequential and Functional models")
