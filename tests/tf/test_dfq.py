"""Data-free quantization (issue 24.1 and 24.5) on a MobileNetV2-style model whose
depthwise channels span three decades of range (``tests/mobilenet.py``), saved as a
user's ``.keras`` + ``.npz`` and gated through its ``compressgate.toml``: equalization
leaves the float model's outputs as they were, bias correction moves the quantized
model's mean output error toward zero, and a model with nothing to equalize says so."""

import mobilenet
import numpy as np
import pytest
import tiny

from compressgate.backends import equalization as eq
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf import dfq
from compressgate.backends.tf.env import deterministic, import_keras
from compressgate.measure import litert
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.project.models import Dataset
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf
MODEL = mobilenet.MODEL


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return mobilenet.build(tmp_path_factory.mktemp(MODEL))


@pytest.fixture(scope="module")
def runner(built):
    # In this process: no worker start-up (cheap in CI).
    return Runner(config.load(built / "compressgate.toml").specs, ResultCache(built / "c"),
                  isolate=False)


def loaded(built):
    deterministic()
    return import_keras().models.load_model(built / f"{MODEL}.keras")


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.max(np.abs(after - before)) / np.max(np.abs(before)))


def test_equalization_leaves_the_float_outputs_unchanged(built):
    model, data = loaded(built), Dataset.load(built / "digits10.npz")
    x = data.x_calib[:200]
    before = model.predict(x, verbose=0)
    dw = model.get_layer("block3_dw_bn")
    spread = np.ptp(np.log10(np.abs(dw.gamma.numpy())))
    recipe = get_recipe("dfq_int8").with_overrides({"dfq": {"correct_bias": False}})
    report = dfq.apply(model, recipe, data)
    assert relative_change(before, model.predict(x, verbose=0)) <= 1e-5
    assert "block3_dw>block3_project" in report.pairs and "stem>block1_expand" in report.pairs
    assert report.float_change <= 1e-5
    # The folded depthwise kernel's channel ranges are even now (they spanned decades).
    ranges = np.abs(model.get_layer("block3_dw").depthwise_kernel.numpy()).max(axis=(0, 1, 3))
    assert spread > 2 and np.ptp(np.log10(ranges[ranges > 0])) < spread / 2


def test_a_broken_scaling_is_caught_before_quantizing(built, monkeypatch):
    """The check that guards the float model: inputs left unscaled change the outputs."""
    monkeypatch.setattr(eq.Unit, "scale_inputs", lambda self, factor: None)
    model, data = loaded(built), Dataset.load(built / "digits10.npz")
    with pytest.raises(RecipeUnsupported, match=r"^dfq: the equalized float model's outputs "
                       r"differ from the original's by .* on the calibration split"):
        dfq.apply(model, get_recipe("dfq_int8"), data)


def mean_error(runner, built, recipe) -> float:
    """The largest |mean over the calibration split| of the int8 file's outputs minus
    the float file's."""
    data = Dataset.load(built / "digits10.npz")
    out, ref = runner.outcome(MODEL, recipe), runner.outcome(MODEL, "float")
    assert out.converted, out.error
    q = litert.predict(out.tflite, data.x_calib).reshape(len(data.x_calib), -1)
    f = litert.predict(ref.tflite, data.x_calib).reshape(len(data.x_calib), -1)
    return float(np.max(np.abs(np.mean(q.astype(np.float64) - f, axis=0))))


def test_bias_correction_moves_the_mean_output_error_toward_zero(runner, built):
    recipe = get_recipe("dfq_int8_per_tensor")
    uncorrected = recipe.with_overrides({"name": "dfq_uncorrected",
                                         "dfq": {"correct_bias": False}})
    corrected_layers = runner.outcome(MODEL, recipe).dfq.corrected
    assert "block1_dw" in corrected_layers and "predictions" in corrected_layers
    assert runner.outcome(MODEL, uncorrected).dfq.corrected == ()
    assert mean_error(runner, built, recipe) < mean_error(runner, built, uncorrected)


def drop(runner, recipe: str) -> float:
    out, ref = runner.outcome(MODEL, recipe), runner.outcome(MODEL, "float")
    assert out.converted, out.error
    return (ref.measurement.accuracy - out.measurement.accuracy) * 100


def test_plain_int8_loses_more_than_the_promise_and_dfq_brings_it_back(runner):
    assert drop(runner, "ptq_int8") > 2.0
    assert drop(runner, "ptq_int8_per_tensor") > 2.0
    assert drop(runner, "dfq_int8_per_tensor") < 2.0
    assert drop(runner, "dfq_int8") < 2.0


def test_a_model_with_no_pair_to_equalize_says_so_in_one_line(tmp_path):
    model = tiny.train_mlp(tmp_path, "tiny.npz", lambda keras: [
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(3, activation="softmax")])
    report = dfq.apply(model, get_recipe("dfq_int8"), Dataset.load(tmp_path / "tiny.npz"))
    assert report.pairs == () and report.note == eq.NO_PAIR and "\n" not in report.note
    assert report.corrected == tuple(layer.name for layer in model.layers)


def test_the_row_names_the_pairs_equalized(runner):
    row = runner.row(MODEL, "dfq_int8")
    assert row.converted and row.dfq is not None and row.dfq.note is None
    expected = {f"{name}_{a}>{name}_{b}" for name, *_ in mobilenet.BLOCKS
                for a, b in (("expand", "dw"), ("dw", "project"))}
    assert expected | {"stem>block1_expand", "head>predictions"} == set(row.dfq.pairs)
    assert row.to_dict()["dfq_pairs"] == list(row.dfq.pairs)
