"""Keras 3 models as model sources.

tfmot (QAT, pruning, clustering) needs tf_keras, so a Keras 3 model gets a *twin*: the
same architecture rebuilt from its config with tf_keras layer classes, with its weights
copied layer by layer. Before any recipe the twin's outputs are compared with the Keras 3
model's on the test split; only a verified twin goes through the tf_keras path. A model
with a layer tf_keras has no class for (a Keras 3-only layer, a ``keras.ops`` call, a
custom layer written for Keras 3) has no twin: the converter-only recipes convert the
Keras 3 model itself (``env.make_converter``), the others cannot apply.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.backends.tf.env import (
    first_line,
    import_keras,
    import_keras3,
    quiet,
)
from compressgate.errors import UserInputError
from compressgate.project import kerasfile

# The twin is faithful when top-1 is identical on every test row and the largest output
# difference is at most this fraction of the Keras 3 model's output range: both run the
# same TensorFlow kernels, so what remains is float32 summation order (measured: below
# 1e-6 of the range on the helper models); one perturbed weight is orders above it.
TOLERANCE = 1e-4


@dataclass
class Keras3Model:
    """A Keras 3 model source: the user's model, and its tf_keras twin or why none."""

    model: Any
    where: str
    twin: Any = None
    # "layer 'x' (...)": the first layer tf_keras cannot rebuild (then twin is None).
    blocker: str | None = None


def load(path: Path, custom_objects: dict | None) -> Keras3Model:
    """The Keras 3 model saved at ``path``, with its twin; one line when it cannot load."""
    keras3 = import_keras3()
    try:
        model = keras3.saving.load_model(path, custom_objects=custom_objects, compile=True)
    except Exception as exc:  # Keras raises many types for a bad file
        raise UserInputError(f"{path}: cannot load as a Keras 3 model "
                             f"({first_line(exc)[:200]})") from None
    return with_twin(model, str(path))


def with_twin(model, where: str) -> Keras3Model:
    """``model`` with its tf_keras twin, or the first layer that has none; one line for
    a subclassed model (no layer graph: no twin, and no input shape to convert at)."""
    kind = type(model).__name__
    if kind not in kerasfile.MODELS:
        raise UserInputError(f"{where}: a subclassed keras.Model ({kind}) has no layer "
                             "graph; compressgate takes Keras 3 Sequential and Functional "
                             "models")
    config = {"class_name": kind, "config": model.get_config()}
    blocker = kerasfile.twin_blocker(config, _has_twin)
    if blocker is not None:
        return Keras3Model(model, where, blocker=blocker)
    try:
        twin = build_twin(model)
    except Exception as exc:  # tf_keras raises many types on a config it cannot take
        return Keras3Model(model, where, blocker="tf_keras cannot rebuild the model "
                           f"({first_line(exc)})")
    return Keras3Model(model, where, twin=twin)


def _has_twin(class_name: str) -> bool:
    layer = getattr(import_keras().layers, class_name, None)
    return isinstance(layer, type) and issubclass(layer, import_keras().layers.Layer)


# -- the twin ---------------------------------------------------------------------------

def _plain(value):
    """A Keras 3 config value as tf_keras reads it: dtype policies become their name;
    serialized objects lose ``module`` / ``registered_name`` (tf_keras would import
    ``keras.src`` paths, i.e. Keras 3 classes), and an initializer's, regularizer's or
    constraint's config keeps only what the tf_keras class takes (Keras 3's GlorotUniform
    adds ``input_axes``)."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return value.get("config", {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            config = _plain(value["config"])
            kind = str(value.get("module", "")).rpartition(".")[2]
            cls = getattr(getattr(import_keras(), kind, None), value["class_name"], None) \
                if kind in ("initializers", "regularizers", "constraints") else None
            if isinstance(cls, type) and isinstance(config, dict):
                config = {k: v for k, v in config.items() if k in _accepted(cls)}
            return {"class_name": value["class_name"], "config": config}
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _accepted(cls) -> set[str]:
    """Constructor arguments ``cls`` (or a base class) takes, plus base Layer's kwargs."""
    names = {"input_dim", "input_shape", "batch_input_shape", "batch_size", "weights",
             "activity_regularizer", "autocast", "dtype", "name", "trainable", "dynamic"}
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(inspect.signature(klass.__init__).parameters)
    return names


def twin_layer(entry: dict):
    """The tf_keras layer a serialized Keras 3 layer ``entry`` describes (weights not
    set): Keras 3 keys tf_keras does not take are dropped (e.g. ``lora_rank``); the
    verification catches one that mattered."""
    keras = import_keras()
    name = entry["class_name"]
    config = _plain(entry.get("config") or {})
    if name == "InputLayer":
        config["batch_input_shape"] = config.pop("batch_shape", config.get(
            "batch_input_shape"))
    cls = getattr(keras.layers, name)
    accepted = _accepted(cls)
    config = {k: v for k, v in config.items() if k in accepted}
    for key in ("layer", "backward_layer"):  # wrappers hold serialized layers
        if isinstance(config.get(key), dict):
            config[key] = {"class_name": config[key]["class_name"],
                           "config": _inner_config(config[key])}
    return cls.from_config(config)


def _inner_config(entry: dict) -> dict:
    """A wrapped layer's config as tf_keras writes it."""
    return twin_layer(entry).get_config()


def build_twin(model):
    """The tf_keras twin of a Keras 3 Sequential or Functional ``model``, weights copied."""
    keras = import_keras()
    config = model.get_config()
    if type(model).__name__ == "Sequential":
        twin = keras.Sequential([twin_layer(e) for e in config["layers"]],
                                name=config.get("name"))
    else:
        twin = _functional(config)
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return twin


def _functional(config: dict):
    """A tf_keras Functional model wired as a Keras 3 Functional ``config``: each layer
    called on the tensors its ``inbound_nodes`` name (``__keras_tensor__`` entries carry
    ``keras_history`` = [layer, node, tensor])."""
    keras = import_keras()
    outputs: dict[tuple[str, int], list] = {}

    def resolve(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                layer, node, index = value["config"]["keras_history"]
                return outputs[(layer, node)][index]
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):  # a file's config has lists, get_config tuples
            return [resolve(v) for v in value]
        return value

    for entry in config["layers"]:
        name = entry.get("name") or entry["config"]["name"]
        layer = twin_layer(entry)
        if entry["class_name"] == "InputLayer":
            outputs[(name, 0)] = [layer.output]
            continue
        for index, node in enumerate(entry.get("inbound_nodes", [])):
            result = layer(*resolve(node.get("args", [])), **resolve(node.get("kwargs", {})))
            outputs[(name, index)] = list(result) if isinstance(result, list | tuple) \
                else [result]

    def ends(spec):
        if spec and isinstance(spec[0], str):  # one tensor: [layer, node, index]
            return outputs[(spec[0], spec[1])][spec[2]]
        return [ends(s) for s in spec]

    return keras.Model(ends(config["input_layers"]), ends(config["output_layers"]),
                       name=config.get("name"))


# -- verification -----------------------------------------------------------------------

@dataclass(frozen=True)
class Verified:
    """How closely the twin matched the Keras 3 model on the test split."""

    rows: int
    top1_same: int
    max_diff: float
    output_range: float
    # One line naming the first layer whose outputs differ (None: the twin is faithful).
    mismatch: str | None

    @property
    def relative(self) -> float:
        return self.max_diff / self.output_range if self.output_range else self.max_diff

    def line(self) -> str:
        return (f"tf_keras twin verified on {self.rows} test rows: top-1 identical, "
                f"largest difference {self.relative:.1e} of the output range "
                f"(tolerance {TOLERANCE:.0e})")


def verify(source: Keras3Model, x: np.ndarray, batch: int | None = None) -> Verified:
    """Compare the twin's outputs with the Keras 3 model's on ``x``."""
    assert source.twin is not None
    batch = batch or 256
    with quiet():  # Keras 3 warns about retracing when shapes vary between calls
        expected = np.asarray(source.model.predict(x, batch_size=batch, verbose=0))
        got = np.asarray(source.twin.predict(x, batch_size=batch, verbose=0))
    top1_same = int(np.sum(np.argmax(expected, -1) == np.argmax(got, -1))) \
        if expected.shape[-1] > 1 else len(x)
    max_diff = float(np.max(np.abs(expected - got)))
    spread = float(np.max(expected) - np.min(expected))
    found = Verified(len(x), top1_same, max_diff, spread, None)
    if top1_same == len(x) and found.relative <= TOLERANCE:
        return found
    first = first_differing_layer(source, x[:batch])
    return Verified(len(x), top1_same, max_diff, spread, (
        f"{source.where}: the tf_keras twin differs from the Keras 3 model on the test "
        f"split (top-1 same on {top1_same} of {len(x)} rows, largest difference "
        f"{found.relative:.1e} of the output range, tolerance {TOLERANCE:.0e}); first "
        f"differing layer: {first}"))


def first_differing_layer(source: Keras3Model, x: np.ndarray) -> str:
    """The first layer (in the twin's order) whose outputs differ beyond the tolerance."""
    keras, keras3 = import_keras(), import_keras3()
    for layer in source.twin.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            ours = keras.Model(source.twin.inputs, layer.output)(x, training=False)
            theirs = keras3.Model(source.model.inputs, source.model.get_layer(
                layer.name).output)(x, training=False)
        except Exception:  # a layer with several nodes: compare what can be compared
            continue
        ours, theirs = np.asarray(ours), np.asarray(theirs)
        spread = float(np.max(theirs) - np.min(theirs)) or 1.0
        if ours.shape != theirs.shape or np.max(np.abs(ours - theirs)) > TOLERANCE * spread:
            return f"{layer.name!r} ({type(layer).__name__})"
    return "none layer by layer (the difference is in how the layers are wired)"


def describe_path(source: Keras3Model, verified: Verified | None) -> str:
    """What ``compressgate init`` and the run say about the path a Keras 3 model takes."""
    if source.twin is None:
        return (f"Keras 3 model: {source.blocker}; the converter "
                "recipes (float, ptq_*, lq_*) convert the Keras 3 model itself; QAT, "
                "pruning and clustering cannot apply")
    if verified is None:
        return "Keras 3 model: tf_keras twin built (verified on the test split each run)"
    if verified.mismatch:
        return verified.mismatch
    return f"Keras 3 model: {verified.line()}; every recipe applies"
