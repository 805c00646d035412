"""Channel pruning on a tiny generated residual CNN (Conv2D, BatchNorm, DepthwiseConv2D,
Add, Flatten, Dense): the rebuilt model is narrower, reproduces the original where the
removed channels were zero, keeps the residual Add consistent, and converts to int8."""

import json

import numpy as np
import pytest

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.channel_prune import prune_channels
from compressgate.backends.tf.env import deterministic, import_keras
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import ChannelPruning, get_recipe

pytestmark = pytest.mark.tf
MODEL = "tiny_resnet"
# The channels zeroed (hence removed) in each prunable space: half of each.
REMOVED = {"stem": [1, 2, 5, 6], "ab": list(range(0, 16, 2)), "c": list(range(8, 16)),
           "d": [0, 3, 4, 7, 8, 11, 12, 15]}


def residual_cnn():
    keras = import_keras()
    layers = keras.layers
    inputs = layers.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    y = layers.Conv2D(16, 3, padding="same", name="a")(x)
    y = layers.ReLU()(layers.BatchNormalization(name="a_bn")(y))
    z = layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    z = layers.Conv2D(16, 1, name="b")(z)
    s = layers.Add(name="add")([y, z])
    s = layers.Conv2D(16, 3, padding="same", activation="relu", name="c")(s)
    s = layers.Flatten()(layers.MaxPooling2D(name="pool")(s))
    s = layers.Dense(16, activation="relu", name="d")(s)
    outputs = layers.Dense(3, activation="softmax", name="head")(s)
    return keras.Model(inputs, outputs, name=MODEL)


def images(n: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    """Three classes of 8x8 images: a bright row, column or diagonal, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0, 0.3, size=(n, 8, 8, 1)).astype(np.float32)
    pos = rng.integers(0, 8, size=n)
    for i in range(n):
        if y[i] == 0:
            x[i, pos[i], :, 0] += 1.0
        elif y[i] == 1:
            x[i, :, pos[i], 0] += 1.0
        else:
            x[i, np.arange(8), np.arange(8), 0] += 1.0
    return {"x_train": x[:400], "y_train": y[:400], "x_calib": x[400:450],
            "y_calib": y[400:450], "x_test": x[450:], "y_test": y[450:]}


def zero_removed_channels(model) -> None:
    """Make the ``REMOVED`` channels contribute exactly nothing downstream (and rank
    lowest by L1): zero kernels and biases, zero BatchNorm beta and moving mean."""
    def zero(layer_name, channels, *, kernel_axis=-1):
        layer = model.get_layer(layer_name)
        weights = layer.get_weights()
        for w in weights:
            index = [slice(None)] * w.ndim
            index[kernel_axis if w.ndim > 1 else 0] = channels
            w[tuple(index)] = 0.0
        layer.set_weights(weights)

    zero("stem", REMOVED["stem"])
    for name in ("a", "b"):
        zero(name, REMOVED["ab"])
    zero("dw", REMOVED["ab"], kernel_axis=-2)
    bn = model.get_layer("a_bn")
    gamma, beta, mean, var = bn.get_weights()
    beta[REMOVED["ab"]], mean[REMOVED["ab"]] = 0.0, 0.0
    bn.set_weights([gamma, beta, mean, var])
    zero("c", REMOVED["c"])
    zero("d", REMOVED["d"])


@pytest.fixture(scope="module")
def model():
    deterministic()
    return residual_cnn()


def test_fraction_zero_rebuilds_the_same_model(model):
    x = images()["x_test"][:16]
    same = prune_channels(model, ChannelPruning(fraction=0.0))
    assert same.count_params() == model.count_params()
    np.testing.assert_array_equal(same(x).numpy(), model(x).numpy())


def test_kept_channels_reproduce_the_original_when_the_removed_ones_are_zero(model):
    zeroed = import_keras().models.clone_model(model)
    zeroed.set_weights(model.get_weights())
    zero_removed_channels(zeroed)
    spec = ChannelPruning(fraction=0.5, criterion="l1", skip_first_and_last=False, multiple=1)
    narrow = prune_channels(zeroed, spec)
    # Both branches of the residual Add lost the same channels; the output kept its 3.
    widths = {name: narrow.get_layer(name).kernel.shape[-1] for name in "abcd"}
    assert widths == {"a": 8, "b": 8, "c": 8, "d": 8}
    assert narrow.get_layer("stem").filters == 4
    assert narrow.get_layer("head").units == 3
    assert narrow.get_layer("dw").depthwise_kernel.shape[-2] == 8
    assert narrow.get_layer("a_bn").gamma.shape == (8,)
    assert narrow.count_params() < model.count_params() / 2
    kept = [i for i in range(16) if i not in REMOVED["ab"]]
    np.testing.assert_array_equal(narrow.get_layer("a").bias.numpy(),
                                  zeroed.get_layer("a").bias.numpy()[kept])
    x = images()["x_test"]
    np.testing.assert_allclose(narrow(x).numpy(), zeroed(x).numpy(), atol=1e-5)


def test_a_model_without_prunable_channels_is_refused_naming_the_layer(fixtures_dir):
    lstm = import_keras().models.load_model(fixtures_dir / "seq_rnn.keras")
    with pytest.raises(RecipeUnsupported, match=r"'lstm' \(LSTM\) is not supported"):
        prune_channels(lstm, ChannelPruning())


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    directory = tmp_path_factory.mktemp(MODEL)
    keras = import_keras()
    deterministic()
    trained = residual_cnn()
    trained.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = images()
    trained.fit(data["x_train"], data["y_train"], epochs=5, verbose=0)
    trained.save(directory / f"{MODEL}.keras")
    np.savez(directory / "images.npz", **data)
    (directory / "manifest.json").write_text(json.dumps({"models": {MODEL: {
        "model": f"{MODEL}.keras", "data": "images.npz"}}}))
    # In this process: no worker start-up, no memory measurement (cheap in CI).
    return Runner(config.load(directory / "manifest.json").specs, ResultCache(directory / "c"),
                  isolate=False)


@pytest.mark.parametrize("name", ["channel_prune_int8", "channel_prune_qat_int8"])
def test_pruned_model_converts_to_a_smaller_full_integer_file(runner, name):
    recipe = get_recipe(name).with_overrides({"finetune": {"epochs": 1}})
    out, plain = runner.outcome(MODEL, recipe), runner.outcome(MODEL, "ptq_int8")
    assert out.converted, out.error
    m = out.measurement
    assert (m.input_dtype, m.output_dtype) == ("int8", "int8")
    assert m.size_bytes < 0.8 * plain.measurement.size_bytes
    assert m.accuracy > runner.outcome(MODEL, "float").measurement.accuracy - 0.1
