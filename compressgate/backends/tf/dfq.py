"""Data-free quantization of a tf_keras model before int8 conversion (Nagel et al. 2019):
read the layer graph, fold each BatchNorm into the weight layer before it, equalize the
pairs joined by ReLU or ReLU6, absorb biases, check that the float model still computes
what it did, then correct the biases for the int8 rounding of the kernels. The
arithmetic is ``backends.equalization`` (numpy only); this module reads and writes Keras
layers.

Folding keeps the model's layers: the folded kernel goes into the weight layer and the
BatchNorm is left as an exact identity carrying the folded bias (gamma 1, mean -bias,
variance + epsilon == 1 in float32), which the converter folds into the kernel as it
always does, so the kernel it quantizes is the folded one this module measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compressgate.backends import equalization as eq
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import import_keras
from compressgate.project.models import Dataset
from compressgate.recipes import Recipe

# Layers between an activation and the next weight layer that commute with a positive
# per-channel scale; zero padding does not commute with a shift (bias absorption).
_SCALE_PASSTHROUGH = {"Dropout", "SpatialDropout2D", "MaxPooling2D", "AveragePooling2D",
                      "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D"}
_ZERO_PADDING = {"ZeroPadding2D"}
# Rows predicted at once when reading activations.
_CHUNK = 64


@dataclass
class _Site:
    """A weight layer, the BatchNorm folded into it, and what carries its bias."""

    layer: object
    unit: eq.Unit
    norm: object | None = None
    # The layer whose output is the unit's output (the BatchNorm, else the layer).
    end: str = ""
    window: eq.Window | None = None
    has_bias: bool = False


@dataclass
class _Pair:
    first: str
    second: str
    activation: str  # the layer whose output the ReLU/ReLU6 gives
    relu6: bool
    absorbable: bool
    maxima: np.ndarray | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.first}>{self.second}"


def _graph(model) -> tuple[dict[str, list[str]], dict[str, list[str]], set[str]]:
    """(inputs of each layer, consumers of each layer, model outputs), from the config;
    a layer called more than once has no entry in either (never equalized)."""
    config = model.get_config()
    entries = config.get("layers", [])
    functional = bool(entries) and "inbound_nodes" in entries[0]
    inputs: dict[str, list[str]] = {}
    previous = None
    for entry in entries:
        name = entry["config"]["name"]
        if functional:
            calls = entry["inbound_nodes"]
            if len(calls) > 1:
                continue
            inputs[name] = [i[0] for i in calls[0]] if calls else []
        else:
            inputs[name] = [previous] if previous is not None else []
        previous = name
    consumers: dict[str, list[str]] = {name: [] for name in inputs}
    for name, sources in inputs.items():
        for source in sources:
            consumers.setdefault(source, []).append(name)
    outputs = ({o[0] for o in config["output_layers"]} if functional
               else {model.layers[-1].name})
    return inputs, consumers, outputs


def _relu_kind(layer) -> str | None:
    """"relu" or "relu6" for a ReLU/ReLU6 (as a layer or an activation), else None."""
    keras = import_keras()
    if isinstance(layer, keras.layers.ReLU):
        plain = not float(layer.negative_slope) and not float(layer.threshold)
        if plain and layer.max_value is None:
            return "relu"
        return "relu6" if plain and float(layer.max_value) == 6.0 else None
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    return name if name in ("relu", "relu6") else None


def _is_linear(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear"


def _site(layer) -> _Site | None:
    """The layer as a unit, or None when it is not a Conv2D/DepthwiseConv2D/Dense this
    module handles."""
    keras = import_keras()
    layers = keras.layers
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    if isinstance(layer, layers.DepthwiseConv2D):
        if layer.depth_multiplier != 1 or not channels_last:
            return None
        kind, kernel = "depthwise", layer.depthwise_kernel
    elif type(layer) is layers.Conv2D:
        if layer.groups != 1 or not channels_last:
            return None
        kind, kernel = "conv", layer.kernel
    elif type(layer) is layers.Dense:
        kind, kernel = "conv", layer.kernel
    else:
        return None
    kernel = kernel.numpy().astype(np.float64)
    channels = kernel.shape[-2] if kind == "depthwise" else kernel.shape[-1]
    bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros(channels)
    window = None
    if kind == "depthwise" or type(layer) is layers.Conv2D:
        if tuple(layer.dilation_rate) != (1, 1):
            return None
        window = eq.Window(tuple(layer.kernel_size), tuple(layer.strides), layer.padding)
    return _Site(layer, eq.Unit(layer.name, kind, kernel, bias), end=layer.name,
                 window=window, has_bias=layer.use_bias)


def _fold(model, site: _Site, consumers, outputs) -> None:
    """Fold the BatchNorm that alone follows a linear weight layer into its unit."""
    keras = import_keras()
    after = consumers.get(site.layer.name, [])
    if len(after) != 1 or not _is_linear(site.layer) or site.layer.name in outputs:
        return
    norm = model.get_layer(after[0])
    if not isinstance(norm, keras.layers.BatchNormalization):
        return
    axis = list(norm.axis) if isinstance(norm.axis, list | tuple) else [norm.axis]
    if axis != [len(norm.input_shape) - 1]:
        return
    site.unit.kernel, site.unit.bias = eq.fold_batchnorm(
        site.unit.kernel, site.unit.bias, site.unit.kind,
        gamma=norm.gamma.numpy() if norm.scale else None,
        beta=norm.beta.numpy() if norm.center else None,
        mean=norm.moving_mean.numpy(), variance=norm.moving_variance.numpy(),
        epsilon=norm.epsilon)
    site.norm, site.end = norm, norm.name


def _sites(model) -> tuple[dict[str, _Site], list[_Pair]]:
    """Every weight layer as a unit (BatchNorm folded), and the pairs to equalize."""
    inputs, consumers, outputs = _graph(model)
    sites: dict[str, _Site] = {}
    for layer in model.layers:
        if layer.name in inputs and (site := _site(layer)) is not None:
            _fold(model, site, consumers, outputs)
            sites[layer.name] = site
    by_input = {inputs[name][0]: name for name in sites if len(inputs[name]) == 1}
    found = (_pair_after(model, site, sites, by_input, consumers, outputs)
             for site in sites.values())
    return sites, [pair for pair in found if pair is not None]


def _single(name: str, consumers, outputs) -> str | None:
    after = consumers.get(name, [])
    return after[0] if len(after) == 1 and name not in outputs else None


def _pair_after(model, site: _Site, sites, by_input, consumers, outputs) -> _Pair | None:
    """The pair starting at ``site``: its output through one ReLU/ReLU6 (its own
    activation when nothing was folded) and scale-commuting layers into one weight
    layer that reads nothing else."""
    kind = _relu_kind(site.layer) if site.norm is None else None
    if kind is not None:
        activation = site.end
    else:
        if not _is_linear(site.layer):
            return None
        nxt = _single(site.end, consumers, outputs)
        after = model.get_layer(nxt) if nxt is not None else None
        if type(after).__name__ not in ("ReLU", "Activation"):
            return None
        kind = _relu_kind(after)
        if kind is None:
            return None
        activation = nxt
    current, padded = activation, False
    while (nxt := _single(current, consumers, outputs)) is not None:
        if nxt in sites and by_input.get(current) == nxt:
            second = sites[nxt]
            window = second.window
            absorbable = not padded and (window is None or window.padding == "valid"
                                         or window.size == (1, 1))
            return _Pair(site.layer.name, nxt, activation, kind == "relu6", absorbable)
        layer_type = type(model.get_layer(nxt)).__name__
        if layer_type not in _SCALE_PASSTHROUGH:
            return None
        padded = padded or layer_type in _ZERO_PADDING
        current = nxt
    return None


def _predict(model, tensors: list, x: np.ndarray, reducers: list) -> list:
    """For each of ``tensors`` (symbolic outputs of ``model``'s layers), its values on
    ``x`` folded chunk by chunk with its reducer: ``reduce(chunk, accumulated)``."""
    if not tensors:
        return []
    probe = import_keras().Model(model.inputs, tensors)
    found: list = [None] * len(tensors)
    for start in range(0, len(x), _CHUNK):
        outs = probe(x[start:start + _CHUNK], training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for i, (out, reduce) in enumerate(zip(outs, reducers, strict=True)):
            found[i] = reduce(np.asarray(out, dtype=np.float64), found[i])
    return found


def _channel_range(out: np.ndarray, seen):
    flat = out.reshape(-1, out.shape[-1])
    low, high = flat.min(axis=0), flat.max(axis=0)
    return (low, high) if seen is None else (np.minimum(seen[0], low), np.maximum(seen[1], high))


def _activation_ranges(model, pairs: list[_Pair], x: np.ndarray) -> list:
    tensors = [model.get_layer(p.activation).output for p in pairs]
    return _predict(model, tensors, x, [_channel_range] * len(tensors))


def _write(site: _Site) -> None:
    """Put the unit's folded kernel and bias back into the layer (and its BatchNorm)."""
    kernel = site.unit.kernel.astype(np.float32)
    layer = site.layer
    (layer.depthwise_kernel if site.unit.kind == "depthwise" else layer.kernel).assign(kernel)
    bias = site.unit.bias.astype(np.float32)
    if site.norm is None:
        if site.has_bias:
            layer.bias.assign(bias)
        return
    norm = site.norm
    if site.has_bias:
        layer.bias.assign(np.zeros_like(bias))
    if norm.scale:
        norm.gamma.assign(np.ones_like(bias))
    if norm.center:
        norm.beta.assign(np.zeros_like(bias))
    norm.moving_mean.assign(-bias)
    norm.moving_variance.assign(np.full_like(bias, eq.identity_variance(norm.epsilon)))


def _carries_bias(site: _Site) -> bool:
    return site.norm is not None or site.has_bias


def _correct(model, sites: dict[str, _Site], x: np.ndarray, per_tensor: bool) -> list[str]:
    """Bias correction of every unit that carries a bias: its kernel's int8 rounding
    error times the mean input each tap sees on the calibration split."""
    chosen = [s for s in sites.values() if _carries_bias(s)]

    def summed(window: eq.Window | None):
        def reduce(out: np.ndarray, seen):
            found = eq.window_means(out, window) * len(out)
            return found if seen is None else seen + found
        return reduce

    totals = _predict(model, [s.layer.input for s in chosen], x,
                      [summed(s.window) for s in chosen])
    for site, total in zip(chosen, totals, strict=True):
        unit = site.unit
        error = eq.fake_quant(unit.kernel, unit.kind, per_tensor=per_tensor) - unit.kernel
        unit.bias = unit.bias - eq.expected_shift(error, unit.kind, total / len(x))
        _write(site)
    return [s.layer.name for s in chosen]


def _outputs(model, x: np.ndarray) -> np.ndarray:
    outs = model.predict(x, batch_size=_CHUNK, verbose=0)
    outs = outs if isinstance(outs, list | tuple) else [outs]
    return np.concatenate([np.asarray(o, dtype=np.float64).reshape(len(x), -1) for o in outs],
                          axis=1)


def apply(model, recipe: Recipe, data: Dataset) -> eq.DfqReport:
    """Data-free quantization of ``model`` in place (a fresh load: the float reference
    is another copy); ``RecipeUnsupported`` (one line) when the equalized float model's
    outputs moved more than ``dfq.max_float_change`` on the calibration split."""
    spec = recipe.dfq
    assert spec is not None, recipe.name
    x = data.x_calib[:recipe.calibration_samples].astype(np.float32)
    before = _outputs(model, x)
    sites, pairs = _sites(model)
    if not spec.equalize:
        pairs = []
    clipped = 0
    if pairs:
        ranges = _activation_ranges(model, pairs, x)
        maxima = {}
        for pair, (_, high) in zip(pairs, ranges, strict=True):
            if pair.relu6:
                maxima[(pair.first, pair.second)] = high
                clipped += int(np.sum(eq.clip_bounds(high)[1]))
        eq.equalize({n: s.unit for n, s in sites.items()},
                    [(p.first, p.second) for p in pairs], maxima)
    for site in sites.values():
        _write(site)
    absorbed = []
    if pairs and spec.absorb_bias:
        ranges = _activation_ranges(model, pairs, x)
        for pair, (low, high) in zip(pairs, ranges, strict=True):
            first, second = sites[pair.first], sites[pair.second]
            if not (pair.absorbable and _carries_bias(first) and _carries_bias(second)):
                continue
            moved = eq.absorb(first.unit, second.unit, low, high if pair.relu6 else None)
            if np.any(moved > 0):
                absorbed.append(pair.label)
                _write(first)
                _write(second)
    after = _outputs(model, x)
    change = float(np.max(np.abs(after - before)) / (np.max(np.abs(before)) or 1.0))
    if change > spec.max_float_change:
        raise RecipeUnsupported(
            f"dfq: the equalized float model's outputs differ from the original's by "
            f"{change:.2g} of their largest value on the calibration split (limit "
            f"{spec.max_float_change:g}): equalization would change the model")
    corrected = _correct(model, sites, x, recipe.per_tensor) if spec.correct_bias else []
    return eq.DfqReport(tuple(p.label for p in pairs), tuple(absorbed), tuple(corrected),
                        clipped, change, None if pairs else eq.NO_PAIR)
