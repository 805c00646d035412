"""Recipes are validated data; the registry is extensible. No TensorFlow needed."""

import subprocess
import sys

import pytest

from compressgate import Recipe, UserInputError, get_recipe, register_recipe, registered_recipes
from compressgate.recipes import Pruning


def test_builtin_recipes_cover_the_issue():
    names = {r.name for r in registered_recipes()}
    assert {"float", "ptq_dynamic", "ptq_float16", "ptq_int8", "ptq_int16x8", "qat_int8",
            "prune", "prune_int8", "prune_2by4"} <= names


def test_importing_compressgate_does_not_import_tensorflow():
    # In a fresh interpreter: this test process may have imported TensorFlow already.
    code = ("import sys, compressgate, compressgate.plugin, compressgate.gate.session, "
            "compressgate.cli.main, compressgate.cli.commands, compressgate.gate.rules; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_unknown_recipe_names_the_choices():
    with pytest.raises(UserInputError, match=r"unknown recipe 'int3'.*ptq_int8"):
        get_recipe("int3")


def test_from_dict_rejects_unknown_field_by_name():
    with pytest.raises(UserInputError, match=r"unknown field 'epochz'"):
        Recipe.from_dict({"name": "x", "finetune": {"epochz": 3}})


def test_from_dict_round_trips():
    recipe = get_recipe("prune_int8")
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_overrides_merge_nested_fields_and_validate():
    recipe = get_recipe("prune").with_overrides({"prune": {"final_sparsity": 0.9}})
    assert recipe.prune.final_sparsity == 0.9
    assert recipe.prune.initial_sparsity == get_recipe("prune").prune.initial_sparsity
    with pytest.raises(UserInputError, match="final_sparsity"):
        get_recipe("prune").with_overrides({"prune": {"final_sparsity": 1.5}})


def test_qat_requires_int8():
    with pytest.raises(UserInputError, match="qat"):
        Recipe("bad", qat=True, quantization="float16")


def test_schedule_bounds_are_checked():
    with pytest.raises(UserInputError, match="begin"):
        Pruning(begin=0.8, end=0.5)


def test_register_refuses_silent_redefinition():
    recipe = Recipe("my_int8_test_recipe", quantization="int8")
    register_recipe(recipe)
    with pytest.raises(UserInputError, match="already registered"):
        register_recipe(recipe)
    assert get_recipe("my_int8_test_recipe") is recipe


def test_an_opt_in_recipe_is_registered_but_not_in_the_default_list():
    from compressgate import default_recipes
    from compressgate.recipes.registry import _OPT_IN, _REGISTRY

    recipe = Recipe("optin_probe", quantization="dynamic")
    try:
        register_recipe(recipe, opt_in=True)
        assert get_recipe("optin_probe") is recipe
        assert "optin_probe" in {r.name for r in registered_recipes()}
        assert "optin_probe" not in {r.name for r in default_recipes()}
        register_recipe(recipe, replace=True)  # re-registered without opt_in: a default
        assert "optin_probe" in {r.name for r in default_recipes()}
    finally:
        _REGISTRY.pop("optin_probe", None)
        _OPT_IN.discard("optin_probe")


def test_qat_recipes_start_calibrated_and_say_so_in_their_settings():
    qat = get_recipe("qat_int8")
    assert qat.qat_start == "calibrated" and qat.settings()["qat_start"] == "calibrated"
    assert get_recipe("channel_prune_qat_int8").qat_start == "calibrated"
    assert qat.with_overrides({"qat_start": "tfmot"}).settings()["qat_start"] == "tfmot"
    # Recipes without QAT have none, and their settings (digests, cache keys) are as before.
    assert get_recipe("prune_int8").qat_start is None
    assert "qat_start" not in get_recipe("ptq_int8").settings()
    assert qat.with_overrides({"qat": False}).qat_start is None
    with pytest.raises(UserInputError, match=r"qat_int8: qat_start: expected one of "
                                             r"\('calibrated', 'tfmot'\), got 'warm'"):
        qat.with_overrides({"qat_start": "warm"})
