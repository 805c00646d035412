"""A tiny MLP with one weight outlier, written with its data and a manifest.

A real int8 failure: the middle layer ``wide`` has a huge weight (1000) on an input that
is always zero (a dead ReLU unit of ``hidden``), so the float model ignores it, but
per-channel int8 sets every channel's scale from it and rounds the useful weights of
that layer to zero. Keeping ``wide`` float is the fix.
"""

import json
from pathlib import Path

from tiny import train_mlp

MODEL = "outlier_mlp"


def build(directory: Path) -> Path:
    model = train_mlp(directory, "outlier.npz", lambda keras: [
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="wide"),
        keras.layers.Dropout(0.1, name="dropout"),  # no op in the .tflite
        keras.layers.Dense(3, activation="softmax", name="head")], name=MODEL)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 0], bias[0] = 0.0, -1.0  # unit 0 of "hidden" never fires
    model.get_layer("hidden").set_weights([kernel, bias])
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[0, :] = 1000.0  # ... so this row changes nothing in float
    model.get_layer("wide").set_weights([kernel, bias])
    model.save(directory / f"{MODEL}.keras")
    manifest = {"models": {MODEL: {
        "model": f"{MODEL}.keras", "data": "outlier.npz",
        "recipe_overrides": {"ptq_int8": {"promise": {"min_size_ratio": None}}}}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
