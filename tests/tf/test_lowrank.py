"""Low-rank factorization of tf_keras models (``backends/tf/factorize.py``): factors that
keep a kernel's whole rank reproduce the model, a lower rank removes the parameters it
says, a model with nothing worth splitting says so in one line, and the result row
records the layers factorized with their ranks."""

import numpy as np
import pytest
import tiny

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import deterministic, import_keras
from compressgate.backends.tf.factorize import SUFFIX, factorize_model
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.record import ResultRow
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import LowRank, get_recipe

pytestmark = pytest.mark.tf
# Kernels of exactly this rank: factors at that rank are the whole kernel.
RANKS = {"pw": 2, "fc": 4}


def low_rank_kernel(shape, rank, seed):
    rng = np.random.default_rng(seed)
    m, n = shape[-2], shape[-1]
    kernel = rng.normal(0, 0.5, (m, rank)) @ rng.normal(0, 0.5, (rank, n))
    return kernel.reshape(shape).astype(np.float32)


def conv_model():
    """A strided 1x1 Conv2D, a 3x3 one (not a candidate), a hidden Dense and the head."""
    keras = import_keras()
    layers = keras.layers
    inputs = layers.Input((6, 6, 4))
    x = layers.Conv2D(16, 1, strides=2, activation="relu", name="pw")(inputs)
    x = layers.Conv2D(8, 3, padding="same", name="c3")(x)
    x = layers.Dense(24, activation="relu", name="fc")(layers.Flatten()(x))
    model = keras.Model(inputs, layers.Dense(3, activation="softmax", name="head")(x))
    for name, rank in RANKS.items():
        layer = model.get_layer(name)
        layer.kernel.assign(low_rank_kernel(layer.kernel.shape, rank, seed=rank))
        layer.bias.assign(np.linspace(-0.1, 0.1, layer.bias.shape[0]).astype(np.float32))
    return model


def test_factors_at_a_kernels_whole_rank_reproduce_the_model():
    deterministic()
    model = conv_model()
    out = factorize_model(model, LowRank(energy=0.999999))
    assert out.ranks == RANKS
    clone = out.model
    assert clone.get_layer("pw" + SUFFIX).strides == (2, 2)
    assert clone.get_layer("pw").kernel.shape == (1, 1, 2, 16)
    assert clone.get_layer("fc" + SUFFIX).kernel.shape == (72, 4)
    assert not clone.get_layer("fc" + SUFFIX).use_bias
    x = np.random.default_rng(1).normal(size=(32, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), atol=1e-5)
    skipped = {p.name: p.skip for p in out.plans if p.skip}
    assert skipped == {"head": "a model output (lowrank.skip_output)"}


def test_a_lower_rank_removes_the_parameters_the_rank_says():
    deterministic()
    model = conv_model()
    # budget 0.25: pw 4x16 -> floor(16 / 20) = 0 (stays whole); fc 72x24 -> 4
    out = factorize_model(model, LowRank(budget=0.25))
    assert out.ranks == {"fc": 4}
    assert [p.skip for p in out.plans if p.name == "pw"] == [
        "budget 0.25 allows no rank of a 4x16 kernel"]
    assert out.model.count_params() == model.count_params() - 72 * 24 + 4 * (72 + 24)
    out = factorize_model(model, LowRank(energy=0.5))
    fc = next(p for p in out.plans if p.name == "fc")
    assert 1 <= fc.rank < RANKS["fc"] and fc.energy >= 0.5
    assert out.model.count_params() < model.count_params()


def test_a_sequential_model_is_factorized_in_place_of_its_layer():
    deterministic()
    keras = import_keras()
    model = keras.Sequential([keras.layers.Input((8,)),
                              keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    model.get_layer("hidden").kernel.assign(low_rank_kernel((8, 16), 2, seed=0))
    out = factorize_model(model, LowRank(energy=0.999999))
    assert out.ranks == {"hidden": 2}
    assert [layer.name for layer in out.model.layers] == ["hidden" + SUFFIX, "hidden", "out"]
    x = np.random.default_rng(2).normal(size=(16, 8)).astype(np.float32)
    np.testing.assert_allclose(out.model(x).numpy(), model(x).numpy(), atol=1e-5)


def test_a_model_with_nothing_to_factorize_says_so_in_one_line():
    deterministic()
    keras = import_keras()
    inputs = keras.layers.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, name="c")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    with pytest.raises(RecipeUnsupported) as info:
        factorize_model(keras.Model(inputs, outputs), LowRank())
    assert str(info.value) == ("low-rank: nothing to factorize (head: a model output "
                               "(lowrank.skip_output))")


def test_the_row_records_the_factorized_layers_and_their_ranks(tmp_path):
    tiny.build(tmp_path)
    specs = config.load(tmp_path / "manifest.json").specs
    recipe = get_recipe("lowrank_int8").with_overrides(
        {"lowrank": {"budget": 0.5}, "finetune": {"epochs": 1}})
    runner = Runner(specs, ResultCache(tmp_path / "cache"), isolate=False)
    row = runner.row(tiny.MODEL, recipe)
    # tiny_mlp's hidden Dense is 8x32: floor(0.5 * 256 / 40) = 3; the head stays whole.
    assert row.converted, row.error
    assert row.factorized == {"dense": 3}
    assert (row.input_dtype, row.output_dtype) == ("int8", "int8")
    assert row.finetune_drop_pts is not None
    assert ResultRow.from_dict(row.to_dict()).factorized == {"dense": 3}
    again = Runner(specs, ResultCache(tmp_path / "cache"), isolate=False).row(tiny.MODEL, recipe)
    assert again.cached and again.factorized == {"dense": 3}
