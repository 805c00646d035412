"""litert-quantizer recipes as data, and a float .tflite as a model source: validation,
cache keys, opt-in registration and the cases the gate expects to fail. No TensorFlow."""

from __future__ import annotations

import sys

import pytest

from compressgate import Recipe, UserInputError, default_recipes, get_recipe
from compressgate.gate.session import GateSession, Settings
from compressgate.pipeline.cache import key
from compressgate.project import config
from compressgate.recipes import (
    LITERT_ALGORITHM_RECIPES,
    LITERT_ALGORITHMS,
    LITERT_QUANTIZER_RECIPES,
    ChannelPruning,
    Pruning,
)
from compressgate.workflows.init import render

LQ = [r.name for r in LITERT_QUANTIZER_RECIPES]


def test_litert_recipes_are_registered_opt_in():
    assert LQ == ["lq_int4_weight_only", "lq_int8_dynamic", "lq_int8_static"]
    assert not set(LQ) & {r.name for r in default_recipes()}
    assert get_recipe("lq_int4_weight_only").litert_recipe == "weight_only_wi4_afp32"
    assert not get_recipe("lq_int8_static").needs_keras
    assert not get_recipe("lq_int8_static").is_int8_ptq  # no TF debugger for it
    assert get_recipe("ptq_int8").needs_keras and not get_recipe("float").needs_keras


def test_algorithm_recipes_are_opt_in_data_on_two_litert_recipes():
    chosen = {r.name: (r.litert_recipe, r.litert_algorithm) for r in LITERT_ALGORITHM_RECIPES}
    assert chosen == {"lq_int8_mse": ("static_wi8_ai8", "mse"),
                      "lq_int8_octav": ("static_wi8_ai8", "octav"),
                      "lq_int8_gptq": ("static_wi8_ai8", "gptq"),
                      "lq_int4_mse": ("weight_only_wi4_afp32", "mse"),
                      "lq_int4_octav": ("weight_only_wi4_afp32", "octav")}
    assert not set(chosen) & {r.name for r in default_recipes()}
    assert all(get_recipe(n) == r for n, r in zip(chosen, LITERT_ALGORITHM_RECIPES,
                                                   strict=True))
    assert LITERT_ALGORITHMS["gptq"].ops == ("FULLY_CONNECTED",)
    assert LITERT_ALGORITHMS["gptq"].calibrates and not LITERT_ALGORITHMS["mse"].calibrates
    # The promises are those of the min-max recipes they vary.
    assert get_recipe("lq_int8_mse").promise == get_recipe("lq_int8_static").promise
    assert get_recipe("lq_int4_octav").promise == get_recipe("lq_int4_weight_only").promise


@pytest.mark.parametrize(("fields", "expected"), [
    ({"litert_recipe": "static_wi8_ai8", "litert_algorithm": "adaround"},
     r"^recipe field x: litert_algorithm: expected one of mse, octav, gptq, got 'adaround'$"),
    ({"litert_algorithm": "mse"},
     r"^recipe field x: litert_algorithm: expected a litert_recipe to apply it in "
     r"\(litert-quantizer runs it\), got 'mse'$"),
    ({"litert_recipe": "static_wi8_ai8", "litert_algorithm": 3},
     r"^recipe field litert_algorithm: expected a string \(or unset\), got 3$"),
])
def test_a_bad_litert_algorithm_is_one_line(fields, expected):
    with pytest.raises(UserInputError, match=expected):
        Recipe("x", **fields)


def test_the_algorithm_enters_the_cache_key_only_when_set():
    static = get_recipe("lq_int8_static")
    assert "litert_algorithm" not in static.to_dict()  # old keys stay valid
    variants = [static, *(static.with_overrides({"litert_algorithm": a})
                          for a in LITERT_ALGORITHMS)]
    assert len({key(r.settings()) for r in variants}) == 4
    mse = get_recipe("lq_int8_mse")
    assert mse.to_dict()["litert_algorithm"] == "mse"
    assert Recipe.from_dict(mse.to_dict()) == mse
    assert get_recipe("lq_int8_mse").with_overrides({"litert_algorithm": None}).to_dict() == \
        static.with_overrides({"name": "lq_int8_mse", "description": mse.description}).to_dict()


def test_an_unknown_litert_recipe_is_one_line_naming_the_choices():
    with pytest.raises(UserInputError, match=r"^recipe field x: litert_recipe: expected one "
                       r"of weight_only_wi8_afp32, .*static_wi8_ai8.*, got 'int3'$"):
        Recipe("x", litert_recipe="int3")


@pytest.mark.parametrize("fields", [{"quantization": "int8"}, {"prune": Pruning()},
                                    {"quantization": "int8", "qat": True},
                                    {"channel_prune": ChannelPruning()}])
def test_a_litert_recipe_does_not_also_ask_the_tf_converter(fields):
    with pytest.raises(UserInputError, match=r"litert_recipe: expected no quantization, "
                       r"qat, prune, channel_prune or keep_float"):
        Recipe("x", litert_recipe="dynamic_wi8_afp32", **fields)


def test_the_litert_recipe_enters_the_cache_key_only_when_set():
    assert "litert_recipe" not in get_recipe("ptq_int8").to_dict()  # old keys stay valid
    int4 = get_recipe("lq_int4_weight_only")
    assert int4.to_dict()["litert_recipe"] == "weight_only_wi4_afp32"
    assert Recipe.from_dict(int4.to_dict()) == int4
    other = int4.with_overrides({"litert_recipe": "dynamic_wi4_afp32"})
    assert other.to_dict() != int4.to_dict()


def test_a_tflite_source_expects_keras_recipes_to_fail_in_one_line(tmp_path):
    (tmp_path / "compressgate.toml").write_text(
        '[models.t]\nmodel = "exported.tflite"\ndata = "d.npz"\n'
        'recipes = ["float", "lq_int4_weight_only", "qat_int8", "ptq_int8"]\n'
        '[models.k]\nmodel = "m.keras"\ndata = "d.npz"\nrecipes = ["ptq_int8"]\n')
    project = config.load(tmp_path)
    assert project.specs["t"].is_tflite and not project.specs["k"].is_tflite
    cases = GateSession(Settings(config=tmp_path, reports=None)).cases()
    reasons = {(c.model, c.recipe): c.unsupported for c in cases}
    assert reasons[("t", "float")] is None and reasons[("t", "lq_int4_weight_only")] is None
    assert reasons[("k", "ptq_int8")] is None
    for recipe in ("qat_int8", "ptq_int8"):
        assert reasons[("t", recipe)] == (
            f"unsupported for a .tflite source: {recipe} needs the Keras model (the TF "
            "converter, QAT or pruning); litert-quantizer recipes (lq_*) apply")


def test_init_of_a_tflite_proposes_float_and_the_litert_recipes(tmp_path):
    info = {"input_shape": [1, 8, 8, 1], "output_units": 10, "params": 27500,
            "layers": ["CONV_2D", "FULLY_CONNECTED"], "tflite": True}
    text = render(name="cnn", model="cnn.tflite", data="d.npz", info=info)
    assert "# input 1x8x8x1, 10 output units, 27,500 parameters, 2 op kinds" in text
    assert "# left out: the TF converter's, QAT and pruning recipes" in text
    assert "saved compiled" not in text
    (tmp_path / "compressgate.toml").write_text(text)
    spec = config.load(tmp_path).specs["cnn"]
    assert spec.recipes == ("float", *LQ) and spec.static_batch == 1


def test_diagnosis_says_why_a_litert_recipe_has_no_per_layer_error():
    from compressgate.diagnosis.collect import debuggable

    assert debuggable(get_recipe("lq_int8_static")) == (
        "recipe lq_int8_static is quantized by litert-quantizer (static_wi8_ai8): the "
        "quantization debugger explains the TF converter's int8 PTQ only")


def test_without_the_package_a_litert_recipe_fails_in_one_line(monkeypatch):
    from compressgate.backends import litert_quant
    from compressgate.backends.protocol import RecipeUnsupported

    monkeypatch.setitem(sys.modules, "litert_quantizer", None)  # import raises ImportError
    with pytest.raises(RecipeUnsupported, match=r"^litert-quantizer is not installed or "
                       r"cannot be imported \(.*\): pip install 'compressgate\[litert\]'$"):
        litert_quant.quantize(b"", get_recipe("lq_int4_weight_only"), None, name="m")
