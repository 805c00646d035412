"""litert-quantizer's weight algorithms (lq_int8_mse, ..., lq_int8_gptq) on a tiny
untrained CNN: each changes the weights min-max would give, on the ops it covers only,
and what the installed package lacks is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.project.models import Dataset
from compressgate.recipes import LITERT_ALGORITHMS, get_recipe
from compressgate.recipes.schema import LitertAlgorithm

pytestmark = pytest.mark.tf
pytest.importorskip("litert_quantizer")


def _data(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=120)
    return Dataset.from_mapping({"x_train": x[:40], "y_train": y[:40], "x_calib": x[40:80],
                                 "y_calib": y[40:80], "x_test": x[80:], "y_test": y[80:]},
                                where="random")


def _float_tflite(layers) -> bytes:
    """A seeded, untrained Keras model on 8x8x1 inputs, converted to float."""
    from compressgate.backends.tf.env import deterministic, import_keras, import_tf

    deterministic()
    keras = import_keras()
    model = keras.Sequential([keras.layers.Input((8, 8, 1)), *layers(keras)])
    return import_tf().lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def cnn():
    """CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: every op an algorithm covers."""
    return _float_tflite(lambda keras: [
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax")]), _data()


_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_BOTH_CONVS_AND_DENSE = set(_WEIGHT_OPS)


def _weights(tflite: bytes) -> dict[str, tuple[str, bytes]]:
    """(op, stored bytes) of the weight tensor each CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED reads (through its DEQUANTIZE in a weight-only file), by tensor name:
    int4 weights have no numpy type, so bytes."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    graph = model.subgraphs[0]
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    producer = {int(o): op for op in graph.operators for o in op.outputs}
    out = {}
    for op in graph.operators:
        kind = codes[op.opcodeIndex]
        if kind not in _WEIGHT_OPS:
            continue
        index = int(op.inputs[1])
        source = producer.get(index)
        if source is not None and codes[source.opcodeIndex] == "DEQUANTIZE":
            index = int(source.inputs[0])
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data
        out[tensor.name.decode()] = (kind, bytes(bytearray(data)) if data is not None else b"")
    return out


def _changed(base: bytes, other: bytes) -> set[str]:
    """The ops whose weights differ between two quantizations of a model."""
    a, b = _weights(base), _weights(other)
    assert a.keys() == b.keys() and all(v[1] for v in a.values())
    return {a[n][0] for n in a if a[n][1] != b[n][1]}


@pytest.mark.parametrize(("recipe", "min_max", "changed"), [
    ("lq_int8_mse", "lq_int8_static", _BOTH_CONVS_AND_DENSE),
    # OCTAV's int8 clipping of a 3x3 depthwise channel (9 weights) is its max: min-max.
    ("lq_int8_octav", "lq_int8_static", {"CONV_2D", "FULLY_CONNECTED"}),
    # litert-quantizer 0.11 refuses weight-only DEPTHWISE_CONV_2D: float in both files.
    ("lq_int4_mse", "lq_int4_weight_only", {"CONV_2D", "FULLY_CONNECTED"}),
    ("lq_int4_octav", "lq_int4_weight_only", {"CONV_2D", "FULLY_CONNECTED"})])
def test_each_algorithm_moves_the_weights_min_max_gives(cnn, recipe, min_max, changed):
    from compressgate.backends import litert_quant
    from compressgate.measure import flatbuffer, litert

    tflite, data = cnn
    base = litert_quant.quantize(tflite, get_recipe(min_max), data, name="cnn")
    out = litert_quant.quantize(tflite, get_recipe(recipe), data, name="cnn")
    assert _changed(base, out) == changed
    # Every other op keeps min-max: the file is quantized as the min-max one is.
    assert flatbuffer.precision(out).quantized_tensors == \
        flatbuffer.precision(base).quantized_tensors
    if recipe.startswith("lq_int8"):
        m = litert.measure(out, data.x_test, data.y_test)
        assert (m.input_dtype, m.output_dtype, m.float_ops) == ("int8", "int8", ())


def test_gptq_moves_the_fully_connected_weights_only(cnn):
    from compressgate.backends import litert_quant
    from compressgate.backends.tf.env import deterministic, import_keras, import_tf
    from compressgate.measure import flatbuffer

    deterministic()
    keras = import_keras()
    mlp = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dense(3, activation="softmax")])
    tflite = import_tf().lite.TFLiteConverter.from_keras_model(mlp).convert()
    rows = np.random.default_rng(1).normal(size=(120, 8)).astype(np.float32)
    data = Dataset.from_mapping({**{f"x_{s}": rows[i:i + 40] for s, i in
                                    (("train", 0), ("calib", 40), ("test", 80))},
                                 **{f"y_{s}": np.arange(40) % 3 for s in
                                    ("train", "calib", "test")}}, where="random")
    base = litert_quant.quantize(tflite, get_recipe("lq_int8_static"), data, name="mlp")
    out = litert_quant.quantize(tflite, get_recipe("lq_int8_gptq"), data, name="mlp")
    assert _changed(base, out) == {"FULLY_CONNECTED"}
    assert flatbuffer.precision(out).quantized_tensors == \
        flatbuffer.precision(base).quantized_tensors
    # Measured: after a RESHAPE (Flatten), litert-quantizer 0.11's GPTQ writes the dense
    # kernel as 4 bytes an int8 element, a file LiteRT runs on garbage: refused.
    with pytest.raises(RecipeUnsupported, match=r"^litert-quantizer [\d.]+ wrote a corrupt "
                       r"cnn \(gptq\): weight \S+/dense/MatMul: 8192 bytes for 2048 int8 "
                       r"elements$"):
        litert_quant.quantize(cnn[0], get_recipe("lq_int8_gptq"), cnn[1], name="cnn")


def test_an_algorithm_the_package_lacks_is_one_line(cnn, monkeypatch):
    from compressgate.backends import litert_quant

    tflite, data = cnn
    monkeypatch.setitem(LITERT_ALGORITHMS, "octav",
                        LitertAlgorithm("OCTAV_V2", LITERT_ALGORITHMS["octav"].ops))
    with pytest.raises(RecipeUnsupported, match=r"^litert-quantizer [\d.]+ has no algorithm "
                       r"'OCTAV_V2' \(lq_int8_octav: litert_algorithm octav\); it has "
                       r".*GPTQ.*MSE.*") as info:
        litert_quant.quantize(tflite, get_recipe("lq_int8_octav"), data, name="cnn")
    assert "\n" not in str(info.value)


def test_an_algorithm_without_its_ops_in_the_model_is_one_line(monkeypatch):
    from compressgate.backends import litert_quant

    data = _data()
    no_dense = _float_tflite(lambda keras: [
        keras.layers.Conv2D(3, 3), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Softmax()])
    with pytest.raises(RecipeUnsupported, match=r"^conv: litert-quantizer [\d.]+ GPTQ "
                       r"quantizes FULLY_CONNECTED weights; the model has none \(its ops: "
                       r"CONV_2D, MEAN, SOFTMAX\)$"):
        litert_quant.quantize(no_dense, get_recipe("lq_int8_gptq"), data, name="conv")
    # An op the installed package does not register for the algorithm: the same line.
    monkeypatch.setitem(LITERT_ALGORITHMS, "gptq",
                        LitertAlgorithm("GPTQ", ("CONV_2D",), calibrates=True))
    with pytest.raises(RecipeUnsupported, match=r"^litert-quantizer [\d.]+ has no GPTQ for "
                       r"CONV_2D \(lq_int8_gptq: litert_algorithm gptq\)$"):
        litert_quant.quantize(no_dense, get_recipe("lq_int8_gptq"), data, name="conv")


def test_a_weight_buffer_of_the_wrong_size_is_found(tmp_path):
    """litert-quantizer 0.11's GPTQ wrote digits_cnn's 128x1024 dense kernel as 4 bytes an
    int8 element (measured): LiteRT runs it, reading garbage (84.75 points lost). The
    check that makes such a file a one-line "unsupported", on a planted copy."""
    from ai_edge_litert.tools import flatbuffer_utils

    from compressgate.measure import flatbuffer

    original = (Path(__file__).parents[1] / "data" / "tabular_mlp_ptq_int8.tflite").read_bytes()
    assert flatbuffer.misfit_buffers(original) == []
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(original))
    graph = model.subgraphs[0]
    tensor = next(t for t in graph.tensors if len(t.shape) == 2
                  and model.buffers[t.buffer].data is not None)
    data = model.buffers[tensor.buffer].data
    model.buffers[tensor.buffer].data = np.concatenate([data] * 4)
    planted = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    elements = int(np.prod(tensor.shape))
    assert flatbuffer.misfit_buffers(planted) == [
        f"{tensor.name.decode()}: {4 * elements} bytes for {elements} int8 elements"]
