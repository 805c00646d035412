"""A tiny model + data + manifest written to a directory, for end-to-end gate tests."""

import json
from pathlib import Path

import numpy as np

MODEL = "tiny_mlp"


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(3, 8))
    y = rng.integers(0, 3, size=500)
    x = (centers[y] + rng.normal(0, 1.0, size=(500, 8))).astype(np.float32)
    return {"x_train": x[:300], "y_train": y[:300], "x_calib": x[300:350],
            "y_calib": y[300:350], "x_test": x[350:], "y_test": y[350:]}


def train_mlp(directory: Path, data_file: str, layers, name: str | None = None):
    """A seeded Keras MLP on ``make_data()`` (written to ``directory/data_file``):
    ``layers(keras)`` gives its layers after the input."""
    from compressgate.backends.tf.env import deterministic, import_keras

    directory.mkdir(parents=True, exist_ok=True)
    deterministic()
    keras = import_keras()
    data = make_data()
    np.savez(directory / data_file, **data)
    model = keras.Sequential([keras.layers.Input((8,)), *layers(keras)], name=name)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=20, verbose=0)
    return model


def build(directory: Path) -> Path:
    """Train the tiny MLP (seeded) and write it with its data and a manifest."""
    model = train_mlp(directory, "tiny.npz", lambda keras: [
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax")])
    model.save(directory / f"{MODEL}.keras")
    manifest = {"models": {MODEL: {
        "model": f"{MODEL}.keras", "data": "tiny.npz",
        "recipe_overrides": {
            # A 400-parameter model is mostly graph and metadata: no size promise. No
            # TFLM promise either: the lifecycle tests count the five checks of a recipe
            # (the targets check has its own tests: tests/*/test_targets.py).
            name: {"promise": {"min_size_ratio": None, "min_gzip_ratio": None,
                               **({"targets": []} if name == "ptq_int8" else {})}}
            for name in ("ptq_int8", "prune", "ptq_dynamic")},
    }}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
