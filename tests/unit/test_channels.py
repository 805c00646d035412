"""Channel pruning's choice of channels (numpy only): ranking, residual Adds pruned
identically, outputs and inputs left whole, Flatten expanding kept channels to rows."""

import numpy as np
import pytest

from compressgate import UserInputError, default_recipes, get_recipe
from compressgate.backends.channels import Node, keep_count, l1_scores, plan, refusal, top_channels
from compressgate.recipes import ChannelPruning, Recipe


def chain():
    """input -> conv1 (4) -> bn -> relu -> conv2 (6) -> dense (3, output)."""
    return [Node("in", "input"), Node("conv1", "producer", ("in",), 4),
            Node("bn", "channelwise", ("conv1",)), Node("relu", "passthrough", ("bn",)),
            Node("conv2", "producer", ("relu",), 6),
            Node("dense", "producer", ("conv2",), 3, is_output=True)]


@pytest.mark.parametrize(("channels", "fraction", "multiple", "kept"), [
    (10, 0.5, 1, 5), (10, 0.75, 1, 2), (10, 0.99, 1, 1), (64, 0.7, 8, 24), (20, 0.5, 8, 16),
    (6, 0.5, 8, 6), (64, 0.0, 8, 64),
])
def test_keep_count_rounds_up_to_the_multiple_and_keeps_one(channels, fraction, multiple, kept):
    assert keep_count(channels, fraction, multiple) == kept


def test_l1_scores_are_per_output_channel():
    kernel = np.zeros((3, 3, 2, 4))
    kernel[..., 1] = -1.0
    kernel[0, 0, 0, 3] = 2.0
    assert l1_scores(kernel).tolist() == [0.0, 18.0, 0.0, 2.0]


def test_top_channels_normalizes_each_member_and_breaks_ties_low():
    # Alone, the large-scale member would pick channel 0; normalized, 2 wins on the sum.
    big, small = np.array([100.0, 1.0, 99.0, 0.0]), np.array([0.0, 0.1, 1.0, 0.0])
    assert top_channels([big], 1).tolist() == [0]
    assert top_channels([big, small], 1).tolist() == [2]
    assert top_channels([np.ones(5)], 2).tolist() == [0, 1]


def test_chain_prunes_hidden_layers_and_slices_their_consumers():
    scores = {"conv1": np.array([4.0, 1.0, 3.0, 2.0]),
              "conv2": np.array([1.0, 6.0, 2.0, 5.0, 3.0, 4.0])}
    result = plan(chain(), scores, 0.5, skip_first_and_last=False)
    assert result.out_keep["conv1"].tolist() == [0, 2]
    assert result.out_keep["conv2"].tolist() == [1, 3, 5]
    assert "dense" not in result.out_keep and "model output" in result.left_whole["dense"]
    assert result.in_keep["bn"].tolist() == [0, 2]
    assert result.in_keep["conv2"].tolist() == [0, 2]
    assert result.in_keep["dense"].tolist() == [1, 3, 5]
    assert "conv1" not in result.in_keep  # the model input stays whole


def test_fraction_zero_removes_nothing():
    result = plan(chain(), {}, 0.0, skip_first_and_last=False)
    assert result.out_keep == {} and result.in_keep == {}


def test_skip_first_and_last_leaves_the_outer_prunable_layers_whole():
    nodes = [*chain()[:-1], Node("conv3", "producer", ("conv2",), 8),
             Node("dense", "producer", ("conv3",), 3, is_output=True)]
    result = plan(nodes, {}, 0.5, skip_first_and_last=True)
    assert set(result.out_keep) == {"conv2"}
    assert {"conv1", "conv3"} <= set(result.left_whole)


def residual():
    """conv_a -> relu -> conv_b; add(relu, conv_b) -> conv_c -> dense (output)."""
    return [Node("in", "input"), Node("conv_a", "producer", ("in",), 4),
            Node("relu", "passthrough", ("conv_a",)),
            Node("conv_b", "producer", ("relu",), 4),
            Node("add", "add", ("relu", "conv_b")),
            Node("conv_c", "producer", ("add",), 4),
            Node("dense", "producer", ("conv_c",), 2, is_output=True)]


def test_residual_add_prunes_both_branches_identically_by_their_summed_scores():
    scores = {"conv_a": np.array([3.0, 0.0, 2.0, 1.0]), "conv_b": np.array([0.0, 3.0, 2.5, 0.5]),
              "conv_c": np.array([1.0, 2.0, 3.0, 4.0])}
    result = plan(residual(), scores, 0.5, skip_first_and_last=False)
    # Normalized sums [2, 2, 3, 1]: channel 2, then 0 (the lower of the tie).
    assert result.out_keep["conv_a"].tolist() == result.out_keep["conv_b"].tolist() == [0, 2]
    assert result.in_keep["conv_b"].tolist() == result.in_keep["conv_c"].tolist() == [0, 2]
    assert result.out_keep["conv_c"].tolist() == [2, 3]


def test_residual_add_on_the_model_input_is_left_whole():
    nodes = [Node("in", "input"), Node("conv", "producer", ("in",), 1),
             Node("add", "add", ("in", "conv")), Node("conv2", "producer", ("add",), 4),
             Node("dense", "producer", ("conv2",), 2, is_output=True)]
    result = plan(nodes, {}, 0.5, skip_first_and_last=False)
    assert set(result.out_keep) == {"conv2"}
    assert "model input" in result.left_whole["conv"]


def test_flatten_expands_kept_channels_to_every_position():
    nodes = [Node("in", "input"), Node("conv", "producer", ("in",), 4),
             Node("flat", "flatten", ("conv",), 3), Node("drop", "passthrough", ("flat",)),
             Node("dense", "producer", ("drop",), 2, is_output=True)]
    result = plan(nodes, {"conv": np.array([1.0, 4.0, 0.0, 3.0])}, 0.5,
                  skip_first_and_last=False)
    assert result.out_keep["conv"].tolist() == [1, 3]
    assert result.in_keep["dense"].tolist() == [1, 3, 5, 7, 9, 11]


def test_fallback_ranks_spaces_the_criterion_does_not_reach():
    fallback = {"conv1": np.array([0.0, 5.0, 4.0, 0.0])}
    result = plan(chain(), {}, 0.5, fallback=fallback, skip_first_and_last=False)
    assert result.out_keep["conv1"].tolist() == [1, 2]


def test_unsupported_layer_blocks_its_spaces_and_the_refusal_names_it():
    nodes = [Node("in", "input"),
             Node("lstm", "other", ("in",), why="'lstm' (LSTM) is not supported"),
             Node("dense", "producer", ("lstm",), 3, is_output=True)]
    result = plan(nodes, {}, 0.5, skip_first_and_last=False)
    line = refusal(nodes, result)
    assert result.out_keep == {}
    assert line == ("channel pruning: no layer can lose channels (dense: 'dense' is a model "
                    "output; 'lstm' (LSTM) is not supported)")
    blocked = [Node("in", "input"), Node("conv", "producer", ("in",), 8),
               Node("lstm", "other", ("conv",), why="'lstm' (LSTM) is not supported"),
               Node("dense", "producer", ("lstm",), 3, is_output=True)]
    assert "conv: 'lstm' (LSTM) is not supported" in refusal(blocked, plan(blocked, {}, 0.5))
    assert refusal(chain(), plan(chain(), {}, 0.5, skip_first_and_last=False)) is None


def test_channel_prune_recipes_are_opt_in_data_and_keep_old_cache_keys():
    recipe = get_recipe("channel_prune_int8")
    assert recipe.channel_prune is not None and recipe.needs_finetune
    assert not recipe.is_int8_ptq
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert "channel_prune" not in get_recipe("ptq_int8").to_dict()
    names = {r.name for r in default_recipes()}
    assert not {"channel_prune_int8", "channel_prune_qat_int8"} & names
    assert get_recipe("channel_prune_qat_int8").qat
    with pytest.raises(UserInputError, match=r"channel_prune.fraction: expected a fraction"):
        recipe.with_overrides({"channel_prune": {"fraction": 1.0}})
    with pytest.raises(UserInputError, match=r"channel_prune.criterion"):
        ChannelPruning(criterion="l2")
    with pytest.raises(UserInputError, match=r"channel_prune.fraction: expected a number"):
        ChannelPruning(fraction="0.5")
