"""The shard split: deterministic, complete, disjoint, balanced over recipes and models."""

from collections import Counter

import pytest

from compressgate.errors import UserInputError
from compressgate.gate import shards

MODELS = ["digits_cnn", "digits_dscnn", "seq_rnn", "tabular_mlp"]
RECIPES = ["float", "ptq_dynamic", "ptq_float16", "ptq_int8", "ptq_int16x8", "qat_int8",
           "prune", "prune_int8", "prune_2by4"]
CASES = [(m, r) for m in MODELS for r in RECIPES]


@pytest.mark.parametrize("text, shard", [
    ("1/2", shards.Shard(1, 2)), (" 3 / 3 ", shards.Shard(3, 3)), ("", None), (None, None)])
def test_parse(text, shard):
    assert shards.parse(text) == shard


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "1/0", "a/b", "1/2/3", "-1/2"])
def test_a_bad_shard_is_one_line_naming_the_option(text):
    with pytest.raises(UserInputError) as info:
        shards.parse(text)
    assert str(info.value) == ("--compressgate-shard: expected K/N with 1 <= K <= N "
                               f"(e.g. 1/2), got {text!r}")


def test_the_environment_variable_names_itself(monkeypatch):
    monkeypatch.setenv(shards.SHARD_ENV, "2/1")
    with pytest.raises(UserInputError, match=r"^\$COMPRESSGATE_SHARD: expected K/N"):
        shards.from_env()
    monkeypatch.setenv(shards.SHARD_ENV, "2/3")
    assert shards.from_env() == shards.Shard(2, 3)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 36, 40])
def test_shards_partition_the_cases_whatever_their_order(count):
    parts = [shards.select(CASES, shards.Shard(k, count)) for k in range(1, count + 1)]
    assert sorted(c for part in parts for c in part) == sorted(CASES)  # complete, disjoint
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    shuffled = CASES[::-1]
    assert [set(shards.select(shuffled, shards.Shard(k, count))) for k in range(1, count + 1)] \
        == [set(p) for p in parts]  # the split depends on the cases, not their order


def test_two_shards_split_every_recipe_and_every_model():
    first = shards.select(CASES, shards.Shard(1, 2))
    per_recipe = Counter(r for _, r in first)
    per_model = Counter(m for m, _ in first)
    # Each fine-tuning recipe runs on two models per shard; each model loses about half
    # of its recipes to the other shard (so the slow models are shared too).
    assert set(per_recipe.values()) == {2}
    assert all(4 <= n <= 5 for n in per_model.values())


def test_no_shard_selects_everything_in_order():
    assert shards.select(CASES, None) == CASES
