"""Low-rank factorization's numpy side (``backends.lowrank``): the rank by retained energy
or by a parameter budget, which kernels are worth splitting, the SVD factors; and the
recipe fields of distillation and low-rank, checked in one line. No TensorFlow."""

import numpy as np
import pytest

from compressgate import UserInputError
from compressgate.backends import lowrank
from compressgate.recipes import (
    Distill,
    FineTune,
    LowRank,
    Recipe,
    default_recipes,
    get_recipe,
)


def kernel_with(singular_values, m=12, n=10, seed=0) -> np.ndarray:
    """An m x n kernel whose singular values are exactly ``singular_values``."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    s = np.zeros((m, n))
    s[np.arange(len(singular_values)), np.arange(len(singular_values))] = singular_values
    return u @ s @ v.T


@pytest.mark.parametrize(("energy", "rank"), [
    # squares 16, 9, 4, 1, 0...: cumulative 16/30, 25/30, 29/30, 30/30
    (0.5, 1), (16 / 30, 1), (0.54, 2), (0.9, 3), (29 / 30, 3), (0.97, 4), (1.0, 4)])
def test_rank_by_energy_is_the_smallest_keeping_that_share_of_squares(energy, rank):
    assert lowrank.rank_by_energy(np.array([4.0, 3.0, 2.0, 1.0, 0.0]), energy) == rank


def test_rank_by_energy_sorts_and_survives_a_zero_kernel():
    assert lowrank.rank_by_energy(np.array([1.0, 4.0, 2.0, 3.0]), 0.5) == 1
    assert lowrank.rank_by_energy(np.zeros(5), 0.9) == 1


@pytest.mark.parametrize(("m", "n", "budget", "rank"), [
    (64, 32, 0.5, 10),    # 10 * 96 = 960 <= 1024 < 11 * 96
    (1024, 128, 0.25, 28),  # 28 * 1152 = 32256 <= 32768 < 29 * 1152
    (10, 2, 0.1, 0),      # even rank 1 (12 parameters) is over 2
    (8, 8, 0.5, 2)])      # exactly on the budget: 2 * 16 = 32 of 64
def test_rank_by_budget_is_the_largest_within_it(m, n, budget, rank):
    assert lowrank.rank_by_budget(m, n, budget) == rank


def test_saving_needs_fewer_factor_parameters_than_the_kernel():
    assert lowrank.saves(64, 32, 21) and not lowrank.saves(64, 32, 22)  # 2016 / 2112 vs 2048
    assert not lowrank.saves(64, 32, 0)


def test_plan_chooses_by_energy_or_budget_and_says_why_a_kernel_stays_whole():
    kernel = kernel_with([4.0, 3.0, 2.0, 1.0])
    by_energy = lowrank.plan("d", kernel, LowRank(energy=0.9))
    assert (by_energy.rank, by_energy.skip, by_energy.energy) == (3, None, pytest.approx(29 / 30))
    assert by_energy.params == 3 * 22
    by_budget = lowrank.plan("d", kernel, LowRank(budget=0.2))  # 24 / 22 -> rank 1
    assert (by_budget.rank, by_budget.skip) == (1, None)
    full = lowrank.plan("d", kernel_with([1.0] * 10), LowRank(energy=1.0))
    assert full.rank == 10 and full.skip == "rank 10 of a 12x10 kernel saves nothing (220 >= 120 "\
        "parameters)"
    assert full.params == 120
    tiny = lowrank.plan("head", kernel_with([1.0, 1.0], m=10, n=2), LowRank(budget=0.1))
    assert tiny.skip == "budget 0.1 allows no rank of a 10x2 kernel"


def test_factors_reproduce_the_kernel_at_full_rank_and_are_the_best_lower_rank():
    kernel = kernel_with([5.0, 3.0, 1.0, 0.5], m=9, n=7).astype(np.float32)
    a, b = lowrank.factorize(kernel, 7)
    assert (a.shape, b.shape, a.dtype) == ((9, 7), (7, 7), np.float32)
    np.testing.assert_allclose(a @ b, kernel, atol=1e-5)
    a2, b2 = lowrank.factorize(kernel, 2)
    assert (a2.shape, b2.shape) == ((9, 2), (2, 7))
    # Eckart-Young: the error left is the dropped singular values.
    assert np.linalg.norm(kernel - a2 @ b2) == pytest.approx(np.hypot(1.0, 0.5), rel=1e-4)
    # Balanced: both factors carry the same share of each singular value.
    np.testing.assert_allclose(np.linalg.norm(a2, axis=0), np.linalg.norm(b2, axis=1),
                               rtol=1e-5)


@pytest.mark.parametrize(("fields", "message"), [
    ({"finetune": {"distill": {"temperature": 0}}},
     "recipe field finetune.distill.temperature: expected a number > 0, got 0"),
    ({"finetune": {"distill": {"alpha": 1.5}}},
     "recipe field finetune.distill.alpha: expected a number in [0, 1], got 1.5"),
    ({"finetune": {"distill": {"temp": 2}}},
     "recipe field finetune.distill: unknown field 'temp' (expected one of alpha, "
     "temperature)"),
    ({"finetune": {"distill": "yes"}},
     "recipe field finetune.distill: expected a table {temperature, alpha} or none, "
     "got 'yes'"),
    ({"lowrank": {"energy": 0}}, "recipe field lowrank.energy: expected a fraction in "
                                 "(0, 1], got 0"),
    ({"lowrank": {"budget": 1.0}}, "recipe field lowrank.budget: expected a fraction in "
                                   "(0, 1), got 1.0"),
    ({"lowrank": {"energy": "90%"}}, "recipe field lowrank.energy: expected a number, "
                                     "got '90%'"),
    ({"litert_recipe": "static_wi8_ai8", "quantization": "none"},
     "recipe field lowrank_int8: lowrank: expected no litert_recipe, keep_float or "
     "candidate (it rebuilds the Keras model), got LowRank(energy=0.9, budget=0.25, "
     "skip_output=True)"),
])
def test_distill_and_lowrank_fields_fail_in_one_line_naming_the_field(fields, message):
    with pytest.raises(UserInputError) as info:
        get_recipe("lowrank_int8").with_overrides(fields)
    assert str(info.value) == message


def test_distilling_without_a_fine_tune_is_refused():
    with pytest.raises(UserInputError, match=r"^recipe field ptq_int8: finetune.distill: "
                                             r"expected a recipe that fine-tunes"):
        get_recipe("ptq_int8").with_overrides({"finetune": {"distill": {}}})


def test_new_fields_stay_out_of_old_recipes_settings_and_enter_the_new_ones():
    """Cache keys and recorded digests of every other recipe are as before."""
    for name in ("ptq_int8", "qat_int8", "channel_prune_int8"):
        settings = get_recipe(name).settings()
        assert "lowrank" not in settings and "distill" not in settings["finetune"]
    kd = get_recipe("channel_prune_kd_int8")
    assert kd.settings()["finetune"]["distill"] == {"temperature": 4.0, "alpha": 0.7}
    assert kd.settings() != get_recipe("channel_prune_int8").settings()
    assert get_recipe("lowrank_int8").settings()["lowrank"] == {
        "energy": 0.9, "budget": 0.25, "skip_output": True}
    budget = get_recipe("lowrank_int8").with_overrides({"lowrank": {"budget": None}})
    assert budget.lowrank.budget is None
    assert budget.settings() != get_recipe("lowrank_int8").settings()
    for recipe in (kd, budget, get_recipe("qat_kd_int8")):
        assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_the_new_recipes_are_opt_in_fine_tune_and_are_not_explained_as_plain_ptq():
    names = {r.name for r in default_recipes()}
    assert not {"channel_prune_kd_int8", "qat_kd_int8", "lowrank_int8"} & names
    lowrank_recipe = get_recipe("lowrank_int8")
    assert lowrank_recipe.needs_finetune and not lowrank_recipe.is_int8_ptq
    assert FineTune(distill=Distill()).distill == Distill(temperature=4.0, alpha=0.7)
