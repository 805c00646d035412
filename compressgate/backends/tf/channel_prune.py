"""Structured channel pruning for tf_keras models: describe the layer graph for
``backends.channels``, then rebuild a narrower model carrying the surviving weights.

The choice of channels is numpy-only (``backends.channels``); this module only reads
Keras layers and writes the narrower copy (``keras.models.clone_model`` with each pruned
layer's ``filters``/``units`` reduced, so Sequential and functional models alike keep
their structure and names).
"""

from __future__ import annotations

import numpy as np

from compressgate.backends import channels
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import import_keras
from compressgate.recipes import ChannelPruning

# Layers without weights that keep each channel where it is.
_PASSTHROUGH = {
    "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "GaussianNoise", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "UpSampling1D", "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D",
    "Cropping1D", "Cropping2D",
}
# Per-element activations (softmax couples the channels).
_ELEMENTWISE = {"relu", "relu6", "linear", "sigmoid", "tanh", "swish", "silu", "elu",
                "gelu", "hard_sigmoid", "softplus", "selu"}


def _kind(layer) -> tuple[channels.Kind, int, str]:
    """(kind, channels or positions, why unsupported) of one Keras layer."""
    keras = import_keras()
    layers = keras.layers
    name = type(layer).__name__
    why = f"'{layer.name}' ({name}) is not supported by channel pruning"
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    if isinstance(layer, layers.DepthwiseConv2D):
        ok = layer.depth_multiplier == 1 and channels_last
        return ("channelwise", 0, "") if ok else ("other", 0, why)
    if isinstance(layer, layers.Conv1D | layers.Conv2D) and not isinstance(
            layer, layers.Conv1DTranspose | layers.Conv2DTranspose | layers.SeparableConv2D):
        ok = layer.groups == 1 and channels_last
        return ("producer", layer.filters, "") if ok else ("other", 0, why)
    if type(layer) is layers.Dense:
        return "producer", layer.units, ""
    if isinstance(layer, layers.BatchNormalization):
        ok = list(layer.axis) == [len(layer.input_shape) - 1]
        return ("channelwise", 0, "") if ok else ("other", 0, why)
    if isinstance(layer, layers.Add):
        return "add", 0, ""
    if isinstance(layer, layers.Flatten):
        return "flatten", int(np.prod(layer.input_shape[1:-1])), ""
    if isinstance(layer, layers.Activation):
        ok = getattr(layer.activation, "__name__", "") in _ELEMENTWISE
        return ("passthrough", 0, "") if ok else ("other", 0, why)
    if name in _PASSTHROUGH:
        return "passthrough", 0, ""
    return "other", 0, why


def describe(model) -> list[channels.Node]:
    """The model's layers as ``channels.Node`` in topological order."""
    config = model.get_config()
    entries = config.get("layers", [])
    functional = bool(entries) and "inbound_nodes" in entries[0]
    outputs = ({o[0] for o in config["output_layers"]} if functional
               else {model.layers[-1].name})
    nodes: list[channels.Node] = []
    if not functional and not any(e["class_name"] == "InputLayer" for e in entries):
        nodes.append(channels.Node("<input>", "input"))
    previous = "<input>"
    for entry in entries:
        name = entry["config"]["name"]
        if entry["class_name"] == "InputLayer":  # not among a Sequential's layers
            kind, width, why = "input", 0, ""
        else:
            layer = model.get_layer(name)
            kind, width, why = _kind(layer)
        if functional:
            calls = entry["inbound_nodes"]
            inputs = tuple(i[0] for i in calls[0]) if calls else ()
            if len(calls) > 1:  # one layer object called twice: shared weights
                kind, why = "other", f"'{name}' is shared (called {len(calls)} times)"
        else:
            inputs = (previous,) if kind != "input" else ()
        if len(inputs) > 1 and kind != "add":
            kind, why = "other", why or f"'{name}' ({entry['class_name']}) merges inputs"
        nodes.append(channels.Node(name, kind, inputs, width, name in outputs, why))
        previous = name
    return nodes


def _scores(model, nodes: list[channels.Node], criterion: str):
    """(scores, fallback): the criterion's per-channel scores by layer, and L1 kernel
    norms for spaces the criterion does not reach (``bn_gamma`` without BatchNorm)."""
    l1 = {n.name: channels.l1_scores(model.get_layer(n.name).kernel.numpy())
          for n in nodes if n.kind == "producer"}
    if criterion == "l1":
        return l1, None
    keras = import_keras()
    gamma = {}
    for n in nodes:
        layer = model.get_layer(n.name) if n.kind == "channelwise" else None
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            gamma[n.name] = np.abs(layer.gamma.numpy())
    return gamma, l1


def _slice(weights: list[np.ndarray], kind: str, in_keep, out_keep) -> list[np.ndarray]:
    """A layer's weights with its removed input and output channels dropped."""
    out = []
    for w in weights:
        if kind == "producer" and w.ndim >= 2:  # kernel [..., in, out]
            if in_keep is not None:
                w = np.take(w, in_keep, axis=-2)
            if out_keep is not None:
                w = w[..., out_keep]
        elif kind == "producer":  # bias
            w = w[out_keep] if out_keep is not None else w
        elif kind == "channelwise" and in_keep is not None:
            w = np.take(w, in_keep, axis=-2 if w.ndim == 4 else 0)  # depthwise [h,w,c,1]
        out.append(w)
    return out


def prune_channels(model, spec: ChannelPruning):
    """A narrower copy of ``model`` with ``spec``'s channels removed and the surviving
    weights carried over; ``RecipeUnsupported`` (one line) when nothing can be removed."""
    keras = import_keras()
    nodes = describe(model)
    scores, fallback = _scores(model, nodes, spec.criterion)
    result = channels.plan(nodes, scores, spec.fraction, fallback=fallback,
                           skip_first_and_last=spec.skip_first_and_last,
                           multiple=spec.multiple)
    if spec.fraction > 0:
        reason = channels.refusal(nodes, result)
        if reason is not None:
            raise RecipeUnsupported(reason)

    def narrow(layer):
        config = layer.get_config()
        keep = result.out_keep.get(layer.name)
        if keep is not None:
            config["filters" if "filters" in config else "units"] = len(keep)
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=narrow)
    kinds = {n.name: n.kind for n in nodes}
    for layer in clone.layers:
        original = model.get_layer(layer.name)
        layer.set_weights(_slice(original.get_weights(), kinds.get(layer.name, "other"),
                                 result.in_keep.get(layer.name),
                                 result.out_keep.get(layer.name)))
    return clone
