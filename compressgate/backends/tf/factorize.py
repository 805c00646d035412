"""Low-rank factorization of a tf_keras model: each Dense layer and 1x1 Conv2D whose
rank (``backends.lowrank.plan``) saves parameters becomes two layers, a linear one of
rank r without bias, named ``<layer>_lowrank``, then the layer itself at width n on r
inputs (its bias, activation and name unchanged, so nothing downstream is rewired).

The model is rebuilt from its config with the first factor inserted before each
factorized layer; every other layer keeps its weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressgate.backends import lowrank
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import import_keras
from compressgate.recipes import LowRank

SUFFIX = "_lowrank"


@dataclass(frozen=True)
class Factorized:
    """The rebuilt model and the plan of every candidate layer (factorized or not)."""

    model: object
    plans: tuple[lowrank.Factor, ...]

    @property
    def ranks(self) -> dict[str, int]:
        """Factorized layer -> its rank (what the result row records)."""
        return {p.name: p.rank for p in self.plans if p.skip is None}


def _candidate(layer) -> bool:
    """A Dense layer or a 1x1 Conv2D (one group): its kernel is one 2-D matrix."""
    layers = import_keras().layers
    if type(layer) is layers.Dense:
        return True
    return (type(layer) is layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and layer.groups == 1)


def _matrix(layer) -> np.ndarray:
    kernel = layer.kernel.numpy()
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1])


def _entries(config: dict) -> tuple[list[dict], bool, set[str]]:
    """(layer entries, whether functional, names of layers producing model outputs)."""
    entries = config["layers"]
    functional = bool(entries) and "inbound_nodes" in entries[0]
    if functional:
        outputs = {o[0] for o in config["output_layers"]}
    else:
        outputs = {entries[-1]["config"]["name"]} if entries else set()
    return entries, functional, outputs


def _first_factor(entry: dict, rank: int, functional: bool) -> dict:
    """The config entry of the rank-r linear layer inserted before ``entry``'s layer."""
    config = dict(entry["config"])
    name = config["name"] + SUFFIX
    config.update(name=name, activation="linear", use_bias=False,
                  activity_regularizer=None)
    config["units" if entry["class_name"] == "Dense" else "filters"] = rank
    first = {**entry, "config": config}
    first.pop("build_config", None)  # built by its call, on the layer's inputs
    if functional:
        first.update(name=name, inbound_nodes=entry["inbound_nodes"])
    return first


def _second_factor(entry: dict, functional: bool) -> None:
    """Edit ``entry`` in place: the layer now reads the first factor (a 1x1 Conv2D's
    striding moved to the first factor, so it steps 1) and is built on its r inputs."""
    entry.pop("build_config", None)
    config = entry["config"]
    if entry["class_name"] == "Conv2D":
        config.update(strides=(1, 1), dilation_rate=(1, 1))
    if functional:
        entry["inbound_nodes"] = [[[config["name"] + SUFFIX, 0, 0, {}]]]


def factorize_model(model, spec: LowRank) -> Factorized:
    """``model`` with every candidate kernel that ``spec`` lets save parameters split in
    two low-rank factors; ``RecipeUnsupported`` (one line) when none does."""
    keras = import_keras()
    config = model.get_config()
    entries, functional, outputs = _entries(config)
    plans: list[lowrank.Factor] = []
    rebuilt_entries: list[dict] = []
    for entry in entries:
        name = entry["config"]["name"]
        layer = model.get_layer(name) if entry["class_name"] != "InputLayer" else None
        if layer is None or not _candidate(layer):
            rebuilt_entries.append(entry)
            continue
        kernel = _matrix(layer)
        plan = lowrank.plan(name, kernel, spec)
        if spec.skip_output and name in outputs:
            plan = lowrank.Factor(name, *kernel.shape, plan.rank, plan.energy,
                                  "a model output (lowrank.skip_output)")
        elif functional and len(entry["inbound_nodes"]) > 1:
            plan = lowrank.Factor(name, *kernel.shape, plan.rank, plan.energy,
                                  f"shared (called {len(entry['inbound_nodes'])} times)")
        plans.append(plan)
        if plan.skip is None:
            second = {**entry, "config": dict(entry["config"])}
            rebuilt_entries.append(_first_factor(entry, plan.rank, functional))
            _second_factor(second, functional)
            rebuilt_entries.append(second)
        else:
            rebuilt_entries.append(entry)
    if not any(p.skip is None for p in plans):
        reasons = "; ".join(f"{p.name}: {p.skip}" for p in plans) or (
            "it has no Dense or 1x1 Conv2D layer")
        raise RecipeUnsupported(f"low-rank: nothing to factorize ({reasons})"[:300])
    config["layers"] = rebuilt_entries
    clone = (keras.Model if functional else model.__class__).from_config(config)
    factors = {p.name: p for p in plans if p.skip is None}
    for layer in clone.layers:
        if layer.name in factors:
            original = model.get_layer(layer.name)
            a, b = lowrank.factorize(_matrix(original), factors[layer.name].rank)
            weights = original.get_weights()
            weights[0] = b.reshape(layer.kernel.shape)
            layer.set_weights(weights)
            first = clone.get_layer(layer.name + SUFFIX)
            first.set_weights([a.reshape(first.kernel.shape)])
        elif not layer.name.endswith(SUFFIX) or layer.name[:-len(SUFFIX)] not in factors:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return Factorized(clone, tuple(plans))
