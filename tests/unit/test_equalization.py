"""Data-free quantization's arithmetic (numpy only, no TensorFlow): BatchNorm folding,
cross-layer equalization across ReLU and ReLU6, bias absorption, the converter's int8
weight rounding and the bias correction's expected shift; the recipes and the row's
record of what was equalized."""

import json

import numpy as np
import pytest

from compressgate import UserInputError, default_recipes, get_recipe
from compressgate.backends import equalization as eq
from compressgate.pipeline.record import RecipeResult, ResultRow
from compressgate.recipes import DataFree

RNG = np.random.default_rng(0)


def dense_pair(decades: float = 3.0):
    """Two Dense units whose first's output channels span ``decades`` of range."""
    w1 = RNG.normal(size=(5, 6)) * 10.0 ** -RNG.uniform(0, decades, 6)
    w2 = RNG.normal(size=(6, 4))
    return (eq.Unit("a", "conv", w1, RNG.normal(size=6) * 0.1),
            eq.Unit("b", "conv", w2, RNG.normal(size=4)))


def run(first: eq.Unit, second: eq.Unit, x: np.ndarray, clip: float | None = None):
    hidden = np.maximum(x @ first.kernel + first.bias, 0.0)
    if clip is not None:
        hidden = np.minimum(hidden, clip)
    return hidden @ second.kernel + second.bias


def test_equalization_across_relu_keeps_the_outputs_and_evens_the_ranges():
    first, second = dense_pair()
    x = RNG.normal(size=(50, 5))
    before = run(first, second, x)
    spread = first.out_ranges().max() / first.out_ranges().min()
    eq.equalize_pair(first, second)
    np.testing.assert_allclose(run(first, second, x), before, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first.out_ranges(), second.in_ranges())
    assert first.out_ranges().max() / first.out_ranges().min() < spread / 5


def test_relu6_keeps_clipped_channels_and_keeps_the_others_under_the_clip():
    first, second = dense_pair()
    first.kernel[:, 0] *= 1e3  # channel 0 reaches the clip
    x = RNG.normal(size=(200, 5))
    before = run(first, second, x, clip=6.0)
    maxima = np.maximum(x @ first.kernel + first.bias, 0).max(axis=0)
    assert maxima[0] >= 6 and np.all(maxima[1:] < 6)
    s = eq.equalize_pair(first, second, eq.clip_bounds(maxima))
    assert s[0] == 1.0 and np.all(s[1:] >= maxima[1:] / 6 - 1e-12)
    np.testing.assert_allclose(run(first, second, x, clip=6.0), before, rtol=1e-10,
                               atol=1e-10)


def test_relu6_scaled_under_its_bound_would_change_the_model():
    """What ``clip_bounds`` prevents: a channel scaled up past the clip."""
    x = RNG.normal(size=(200, 5))
    for half in (False, True):
        first, second = dense_pair(decades=0.0)
        first.kernel *= 5.0 / np.abs(x @ first.kernel + first.bias).max()  # under 6
        before = run(first, second, x, clip=6.0)
        low, clipped = eq.clip_bounds(np.maximum(x @ first.kernel + first.bias, 0).max(axis=0))
        assert not clipped.any()
        s = low * (0.5 if half else 1.01)
        first.scale_outputs(1 / s)
        second.scale_inputs(s)
        same = np.allclose(run(first, second, x, clip=6.0), before, rtol=1e-10, atol=1e-10)
        assert same is not half


def test_sweeps_over_a_chain_settle_and_keep_the_outputs():
    units = {"a": eq.Unit("a", "conv", RNG.normal(size=(4, 5)) * 10.0 ** -RNG.uniform(0, 3, 5),
                          np.zeros(5)),
             "b": eq.Unit("b", "conv", RNG.normal(size=(5, 5)), RNG.normal(size=5)),
             "c": eq.Unit("c", "conv", RNG.normal(size=(5, 3)), np.zeros(3))}
    x = RNG.normal(size=(30, 4))

    def out():
        h = np.maximum(x @ units["a"].kernel + units["a"].bias, 0)
        h = np.maximum(h @ units["b"].kernel + units["b"].bias, 0)
        return h @ units["c"].kernel + units["c"].bias

    before = out()
    sweeps = eq.equalize(units, [("a", "b"), ("b", "c")], {})
    assert 1 < sweeps < eq.MAX_SWEEPS
    np.testing.assert_allclose(out(), before, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(units["a"].out_ranges(), units["b"].in_ranges(), rtol=1e-3)


def test_depthwise_units_scale_their_one_channel_axis():
    unit = eq.Unit("dw", "depthwise", RNG.normal(size=(3, 3, 4, 1)), np.ones(4))
    unit.scale_outputs(np.array([1.0, 2.0, 3.0, 4.0]))
    assert unit.kernel.shape == (3, 3, 4, 1)
    np.testing.assert_allclose(unit.bias, [1, 2, 3, 4])
    np.testing.assert_allclose(unit.out_ranges(), unit.in_ranges())


def test_folded_batchnorm_computes_what_the_layer_and_batchnorm_did():
    w, b = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    gamma, beta, mean, var = (RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=3),
                              RNG.uniform(0.5, 2, 3))
    x = RNG.normal(size=(10, 5))
    expected = (x @ w + b - mean) * gamma / np.sqrt(var + 1e-3) + beta
    kernel, bias = eq.fold_batchnorm(w, b, "conv", gamma=gamma, beta=beta, mean=mean,
                                     variance=var, epsilon=1e-3)
    np.testing.assert_allclose(x @ kernel + bias, expected, rtol=1e-12)
    kernel, bias = eq.fold_batchnorm(w, None, "conv", gamma=None, beta=None, mean=mean,
                                     variance=var, epsilon=1e-3)
    np.testing.assert_allclose(x @ kernel + bias, (x @ w - mean) / np.sqrt(var + 1e-3))


@pytest.mark.parametrize("epsilon", [1e-3, 1e-5, 0.001001])
def test_the_identity_variance_makes_the_batchnorm_factor_exactly_one(epsilon):
    v = eq.identity_variance(epsilon)
    assert v.dtype == np.float32 and v + np.float32(epsilon) == np.float32(1.0)


def test_absorption_moves_the_floor_into_the_next_bias_exactly_above_it():
    first, second = dense_pair()
    first.bias = first.bias + 2.0  # every channel's input stays above about 1
    x = RNG.uniform(-0.1, 0.1, size=(100, 5))
    before = run(first, second, x)
    low = np.maximum(x @ first.kernel + first.bias, 0).min(axis=0)
    c = eq.absorb(first, second, low, None)
    assert np.all(c > 0)
    np.testing.assert_allclose(run(first, second, x), before, rtol=1e-12)
    maxima = np.full(6, 7.0)  # ReLU6 channels at the clip keep their bias
    assert not eq.absorb(first, second, low, maxima).any()


def test_fake_quant_rounds_per_channel_or_per_tensor_to_127_levels():
    w = np.stack([np.linspace(-1, 1, 9), np.linspace(-1e-3, 1e-3, 9)], axis=-1)
    per_channel = eq.fake_quant(w, "conv", per_tensor=False)
    per_tensor = eq.fake_quant(w, "conv", per_tensor=True)
    assert np.all(np.abs(per_channel - w) <= np.abs(w).max(axis=0) / 254 + 1e-15)
    assert np.all(per_tensor[:, 1] == 0)  # the small channel rounds away
    assert len(np.unique(np.round(per_channel[:, 0] * 127, 6))) == 9
    dw = RNG.normal(size=(3, 3, 2, 1)) * np.array([1.0, 1e-3])[:, None]
    assert np.all(eq.fake_quant(dw, "depthwise", per_tensor=False)[:, :, 1] != 0)


def conv2d(x, w, stride, padding):
    """A direct convolution, channels last (reference for the window means)."""
    kh, kw = w.shape[:2]
    h, width = x.shape[1:3]
    if padding == "same":
        oh, ow = -(-h // stride), -(-width // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - width, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // stride + 1, (width - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j] = np.einsum("nabc,abco->no", patch, w)
    return out


@pytest.mark.parametrize(("stride", "padding", "size"), [
    (1, "same", 7), (2, "same", 7), (2, "same", 8), (1, "valid", 6), (2, "valid", 7)])
def test_expected_shift_is_the_mean_change_of_a_convolution(stride, padding, size):
    x = RNG.uniform(0, 3, size=(4, size, size, 3))
    error = RNG.normal(size=(3, 3, 3, 5)) * 1e-2
    means = eq.window_means(x, eq.Window((3, 3), (stride, stride), padding))
    expected = conv2d(x, error, stride, padding).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(eq.expected_shift(error, "conv", means), expected, rtol=1e-10)
    dw_error = RNG.normal(size=(3, 3, 3, 1))
    full = np.zeros((3, 3, 3, 3))
    for c in range(3):
        full[:, :, c, c] = dw_error[:, :, c, 0]
    np.testing.assert_allclose(eq.expected_shift(dw_error, "depthwise", means),
                               conv2d(x, full, stride, padding).mean(axis=(0, 1, 2)),
                               rtol=1e-10)


def test_expected_shift_of_a_dense_layer():
    x, error = RNG.normal(size=(20, 2, 4)), RNG.normal(size=(4, 3))
    np.testing.assert_allclose(eq.expected_shift(error, "conv", eq.window_means(x, None)),
                               (x @ error).mean(axis=(0, 1)))


def test_the_dfq_recipes_are_opt_in_int8_ptq_and_leave_old_cache_keys_alone():
    names = {r.name for r in default_recipes()}
    assert not names & {"dfq_int8", "dfq_int8_per_tensor", "ptq_int8_per_tensor"}
    assert get_recipe("dfq_int8").dfq == DataFree() and not get_recipe("dfq_int8").per_tensor
    assert get_recipe("dfq_int8_per_tensor").per_tensor
    assert "per_tensor" not in get_recipe("ptq_int8").to_dict()
    assert "dfq" not in get_recipe("ptq_int8").to_dict()
    assert get_recipe("ptq_int8_per_tensor").to_dict()["per_tensor"] is True
    assert not get_recipe("dfq_int8").is_int8_ptq


@pytest.mark.parametrize(("overrides", "message"), [
    ({"qat": True}, r"dfq_int8: dfq: expected post-training quantization only"),
    ({"quantization": "float16"}, r"dfq_int8: per_tensor: expected an int8 recipe"),
    ({"dfq": {"max_float_change": "small"}}, r"dfq.max_float_change: expected a number"),
    ({"dfq": {"equalise": True}}, r"unknown field 'equalise'"),
])
def test_bad_dfq_settings_are_one_line(overrides, message):
    base = get_recipe("dfq_int8_per_tensor" if "quantization" in overrides else "dfq_int8")
    with pytest.raises(UserInputError, match=message):
        base.with_overrides({**overrides, "name": "dfq_int8"})


def test_the_row_records_the_pairs_and_the_note_through_json():
    report = eq.DfqReport(("a>b", "b>c"), ("b>c",), ("a", "b", "c"), 3, 2e-7)
    row = ResultRow("m", "dfq_int8", converted=False, dfq=report)
    doc = row.to_dict()
    assert doc["dfq_pairs"] == ["a>b", "b>c"] and doc["dfq_note"] is None
    assert ResultRow.from_dict(doc).dfq == report
    none = ResultRow("m", "dfq_int8", converted=False, dfq=eq.DfqReport(note=eq.NO_PAIR))
    assert ResultRow.from_dict(none.to_dict()).dfq.note.startswith("no Conv2D/")
    assert ResultRow.from_dict(ResultRow("m", "ptq_int8", converted=False).to_dict()).dfq is None
    cached = RecipeResult("m", "dfq_int8", None, "e", None, dfq=report).to_doc()
    assert RecipeResult.from_doc(json.loads(json.dumps(cached)), None).dfq == report


@pytest.mark.parametrize("name", ["dfq_int8", "dfq_int8_per_tensor", "ptq_int8_per_tensor"])
def test_diagnose_says_it_cannot_explain_the_dfq_and_per_tensor_recipes(name):
    from compressgate.diagnosis.collect import debuggable

    assert debuggable(get_recipe(name)).startswith(
        f"recipe {name} is not the converter's plain per-channel int8 PTQ")
    assert debuggable(get_recipe("ptq_int8")) is None
