"""A tiny MLP whose first layer's output channels differ 1000x in range, written with its
data and a manifest: the case cross-layer equalization (dfq_int8) is for.

Unit 0 of ``hidden`` is scaled up 1000x (kernel column and bias) and ``wide`` reads it
1000x smaller (its kernel row 0): ReLU is positively homogeneous, so the float model is
the same function. Under int8 the per-tensor scale of ``hidden``'s output is set by unit
0, and the other units' outputs round to a step or two.
"""

import json
from pathlib import Path

from tiny import train_mlp

MODEL = "imbalanced_mlp"
FACTOR = 1000.0


def build(directory: Path) -> Path:
    model = train_mlp(directory, "imbalanced.npz", lambda keras: [
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="wide"),
        keras.layers.Dense(3, activation="softmax", name="head")], name=MODEL)
    kernel, bias = model.get_layer("hidden").get_weights()
    unit = int(abs(kernel).sum(axis=0).argmax())  # a unit that fires
    kernel[:, unit] *= FACTOR
    bias[unit] *= FACTOR
    model.get_layer("hidden").set_weights([kernel, bias])
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[unit, :] /= FACTOR
    model.get_layer("wide").set_weights([kernel, bias])
    model.save(directory / f"{MODEL}.keras")
    manifest = {"models": {MODEL: {
        "model": f"{MODEL}.keras", "data": "imbalanced.npz",
        "recipe_overrides": {"ptq_int8": {"promise": {"min_size_ratio": None}}}}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
