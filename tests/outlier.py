"""A tiny MLP with one weight outlier, written with its data and a manifest.

A real int8 failure: the middle layer ``wide`` has a huge weight (1000) on an input that
is always zero (a dead ReLU unit of ``hidden``), so the float model ignores it, but
per-channel int8 sets every channel's scale from it and rounds the useful weights of
that layer to zero. Keeping ``wide`` float is the fix.
"""

import json
from pathlib import Path

import numpy as np

from tests.tiny import make_data

MODEL = "outlier_mlp"


def build(directory: Path) -> Path:
    from compressgate.backends import tf as backend

    directory.mkdir(parents=True, exist_ok=True)
    backend.deterministic()
    keras = backend._keras()
    data = make_data()
    np.savez(directory / "outlier.npz", **data)
    model = keras.Sequential([keras.layers.Input((8,)),
                              keras.layers.Dense(16, activation="relu", name="hidden"),
                              keras.layers.Dense(16, activation="relu", name="wide"),
                              keras.layers.Dense(3, activation="softmax", name="head")],
                             name=MODEL)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=20, verbose=0)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 0], bias[0] = 0.0, -1.0  # unit 0 of "hidden" never fires
    model.get_layer("hidden").set_weights([kernel, bias])
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[0, :] = 1000.0  # ... so this row changes nothing in float
    model.get_layer("wide").set_weights([kernel, bias])
    model.save(directory / f"{MODEL}.keras")
    manifest = {"schema": 1, "models": {MODEL: {
        "model": f"{MODEL}.keras", "data": "outlier.npz",
        "recipe_overrides": {"ptq_int8": {"promise": {"min_size_ratio": None}}}}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
