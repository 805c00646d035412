"""Models and data a new user might bring: written to a directory, built with tf_keras.

A 1-D conv regressor on generated signals (scored by MAE), and a functional classifier
on scikit-learn's wine data with a skip connection and a layer tfmot's QAT rejects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import compressgate  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)


def _save_npz(path: Path, splits: dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **splits)


def _split(x: np.ndarray, y: np.ndarray, calib: int, test: int) -> dict[str, np.ndarray]:
    n = len(x)
    order = np.random.default_rng(0).permutation(n)
    x, y = x[order], y[order]
    train = n - calib - test
    return {"x_train": x[:train], "y_train": y[:train],
            "x_calib": x[train:train + calib], "y_calib": y[train:train + calib],
            "x_test": x[train + calib:], "y_test": y[train + calib:]}


def regressor(directory: Path) -> None:
    """``model.keras`` + ``data.npz``: the frequency of a noisy sine, from 64 samples."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(7)
    freq = rng.uniform(1.0, 4.0, size=1400).astype(np.float32)
    t = np.linspace(0, 1, 64, dtype=np.float32)
    x = np.sin(2 * np.pi * freq[:, None] * t + rng.uniform(0, 6.28, (1400, 1)))
    x = (x + rng.normal(0, 0.1, x.shape)).astype(np.float32)[..., None]
    splits = _split(x, freq, calib=200, test=300)
    model = keras.Sequential([
        keras.Input((64, 1)),
        keras.layers.Conv1D(32, 5, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(64, 5, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse", metrics=["mae"])
    model.fit(splits["x_train"], splits["y_train"], epochs=25, batch_size=32, verbose=0)
    model.save(directory / "model.keras")
    _save_npz(directory / "data.npz", splits)


def classifier(directory: Path) -> None:
    """``model.keras`` + ``data.npz``: wine classes from 13 standardized features; a
    residual block and a LayerNormalization (which tfmot's default QAT does not support)."""
    import tensorflow as tf
    import tf_keras as keras
    from sklearn.datasets import load_wine

    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    x, y = load_wine(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    splits = _split(x, y.astype(np.int64), calib=30, test=50)
    inputs = keras.Input((13,))
    h = keras.layers.Dense(512, activation="relu")(inputs)
    r = keras.layers.Dense(512, activation="relu")(h)
    h = keras.layers.Add()([h, r])
    h = keras.layers.LayerNormalization()(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits["x_train"], splits["y_train"], epochs=30, batch_size=16, verbose=0)
    model.save(directory / "model.keras")
    _save_npz(directory / "data.npz", splits)
