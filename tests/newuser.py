"""Models and data a new user might bring: written to a directory, built with tf_keras.

A 1-D conv regressor on generated signals (scored by MAE), and a functional classifier
on scikit-learn's wine data with a skip connection and a layer tfmot's QAT rejects.
"""

from __future__ import annotations

import warnings
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


def _waveforms(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sine, square and triangle waves of random frequency and phase, with noise."""
    y = rng.integers(0, 3, size=n)
    t = np.linspace(0, 1, length, dtype=np.float32)
    phase = 2 * np.pi * (rng.uniform(1.0, 3.0, (n, 1)) * t + rng.uniform(0, 1, (n, 1)))
    sine, square = np.sin(phase), np.sign(np.sin(phase))
    triangle = 2 / np.pi * np.arcsin(np.sin(phase))
    x = np.choose(y[:, None], [sine, square, triangle])
    return (x + rng.normal(0, 0.3, x.shape)).astype(np.float32), y.astype(np.int64)


def conv1d_classifier(directory: Path) -> None:
    """``model.keras`` + ``data.npz``: a 1-D CNN of about 4K parameters telling sine,
    square and triangle waves apart (64 samples each)."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    x, y = _waveforms(1500, 64, np.random.default_rng(7))
    splits = _split(x[..., None], y, calib=200, test=300)
    model = keras.Sequential([
        keras.Input((64, 1)),
        keras.layers.Conv1D(16, 5, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(32, 5, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    _train_and_save(directory, model, splits, learning_rate=3e-3, epochs=15)


def bigru_classifier(directory: Path) -> None:
    """``model.keras`` + ``data.npz``: a bidirectional GRU of about 2K parameters reading
    32 steps of 4 channels; the class is the channel with the steepest trend."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(7)
    n, steps = 1500, 32
    y = rng.integers(0, 4, size=n)
    trend = np.zeros((n, 4), np.float32)
    trend[np.arange(n), y] = rng.uniform(0.5, 1.0, n)
    t = np.linspace(0, 1, steps, dtype=np.float32)
    x = trend[:, None, :] * t[None, :, None] + rng.normal(0, 0.15, (n, steps, 4))
    splits = _split(x.astype(np.float32), y.astype(np.int64), calib=200, test=300)
    model = keras.Sequential([
        keras.Input((steps, 4)),
        keras.layers.Bidirectional(keras.layers.GRU(16)),
        keras.layers.Dense(4, activation="softmax"),
    ])
    _train_and_save(directory, model, splits, learning_rate=5e-3, epochs=8)


def _train_and_save(directory: Path, model, splits: dict[str, np.ndarray], *,
                    learning_rate: float, epochs: int) -> None:
    """Fit a classifier on the training split; write ``model.keras`` and ``data.npz``."""
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits["x_train"], splits["y_train"], epochs=epochs, batch_size=32, verbose=0)
    model.save(directory / "model.keras")
    _save_npz(directory / "data.npz", splits)


def _waves(directory: Path, length: int = 64) -> dict[str, np.ndarray]:
    """Four wave shapes from ``length`` noisy samples (the bundled seq_rnn's task, smaller)."""
    from compressgate.backends.tf.fixtures import waveform_data

    data = waveform_data(n=2400, length=length, seed=3)  # 1400 train, 200 calib, 800 test
    splits = {k: getattr(data, k) for k in data.__dataclass_fields__}
    _save_npz(directory / "data.npz", splits)
    return splits


def _fit_and_save(model, splits: dict[str, np.ndarray], path: Path, epochs: int) -> None:
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits["x_train"], splits["y_train"], epochs=epochs, batch_size=32, verbose=0)
    model.save(path)


def conv1d(directory: Path, epochs: int = 30) -> None:
    """``model.keras`` + ``data.npz``: a 1-D CNN (Conv1D, MaxPooling1D: both refused by
    tfmot's default QAT) on four wave shapes."""
    from compressgate.backends.tf.env import deterministic, import_keras

    deterministic(7)
    keras = import_keras()
    layers = keras.layers
    splits = _waves(directory)
    model = keras.Sequential([
        keras.Input((64, 1)),
        layers.Conv1D(16, 5, activation="relu"),
        layers.MaxPooling1D(2),
        layers.Conv1D(32, 5, activation="relu"),
        layers.GlobalAveragePooling1D(),
        layers.Dense(4, activation="softmax"),
    ])
    _fit_and_save(model, splits, directory / "model.keras", epochs)


def bigru(directory: Path, epochs: int = 20) -> None:
    """``model.keras`` + ``data.npz``: a Bidirectional(GRU) classifier at a dynamic batch
    (as users save them) on four wave shapes."""
    from compressgate.backends.tf.env import deterministic, import_keras

    deterministic(7)
    keras = import_keras()
    layers = keras.layers
    splits = _waves(directory, length=32)
    model = keras.Sequential([
        keras.Input((32, 1)),
        layers.Bidirectional(layers.GRU(24)),
        layers.Dense(4, activation="softmax"),
    ])
    _fit_and_save(model, splits, directory / "model.keras", epochs)


def mini_xception(path: Path):
    """An untrained mini-Xception block (SeparableConv2D + BatchNorm + residual Add, a
    1x1 stride-2 Conv2D shortcut) saved as Keras 2 ``.h5``: loaded in a fresh session its
    layer names clash with those tfmot's QAT transforms generate."""
    from xception import residual_module

    from compressgate.backends.tf.env import deterministic, import_keras

    deterministic(7)
    keras = import_keras()
    layers = keras.layers
    inputs = keras.Input((32, 32, 1))
    x = layers.Conv2D(8, 3, use_bias=False)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    for filters in (16, 32):
        x = residual_module(layers, x, filters)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(7, 3, padding="same")(x))
    model = keras.Model(inputs, layers.Activation("softmax")(x))
    with warnings.catch_warnings():  # .h5 is legacy: that is the point
        warnings.simplefilter("ignore")
        model.save(path)
    return model


# -- Keras 3 models (``import keras``: what TensorFlow 2.21 installs as tf.keras) -------

def _stripes(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy horizontal, vertical and diagonal stripes of random period and phase."""
    y = rng.integers(0, 3, size=n)
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    period = rng.uniform(3.0, 6.0, (n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    axis = np.choose(y[:, None, None], [i[None], j[None], (i + j)[None]])
    x = np.sin(2 * np.pi * axis / period + phase) + rng.normal(0, 0.4, (n, size, size))
    return x.astype(np.float32)[..., None], y.astype(np.int64)


def _keras3_fit_and_save(directory: Path, model, splits: dict[str, np.ndarray], *,
                         epochs: int, learning_rate: float = 3e-3,
                         name: str = "model.keras") -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits["x_train"], splits["y_train"], epochs=epochs, batch_size=32, verbose=0)
    model.save(directory / name)
    _save_npz(directory / "data.npz", splits)


def keras3_conv_bn(directory: Path, name: str = "model.keras") -> None:
    """Keras 3 ``model.keras`` + ``data.npz``: Conv2D + BatchNormalization +
    GlobalAveragePooling2D + Dropout telling 16x16 stripe directions apart."""
    from compressgate.backends.tf.env import import_keras3

    keras = import_keras3()
    keras.utils.set_random_seed(7)
    x, y = _stripes(1300, 16, np.random.default_rng(7))
    splits = _split(x, y, calib=200, test=300)
    layers = keras.layers
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    h = layers.Activation("relu")(layers.BatchNormalization()(h))
    h = layers.Conv2D(32, 3, strides=2, activation="relu")(h)
    h = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(h))
    outputs = layers.Dense(3, activation="softmax")(h)
    _keras3_fit_and_save(directory, keras.Model(inputs, outputs), splits, epochs=6, name=name)


def _tabular() -> dict[str, np.ndarray]:
    """Three classes in 20 features (scikit-learn's make_classification), standardized."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1500, n_features=20, n_informative=10,
                               n_classes=3, class_sep=1.5, random_state=7)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return _split(x, y.astype(np.int64), calib=200, test=300)


def keras3_dense(directory: Path, name: str = "model.keras") -> None:
    """Keras 3 ``model.keras`` + ``data.npz``: a Dense-only Sequential on 20 tabular
    features, three classes."""
    from compressgate.backends.tf.env import import_keras3

    keras = import_keras3()
    keras.utils.set_random_seed(7)
    splits = _tabular()
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    _keras3_fit_and_save(directory, model, splits, epochs=15, name=name)


def keras3_no_twin(directory: Path, name: str = "model.keras") -> None:
    """Keras 3 ``model.keras`` + ``data.npz``: Dense layers around a ``keras.ops.tanh``
    call in the Functional graph (an op node, which tf_keras has no layer for), on the
    tabular data."""
    from compressgate.backends.tf.env import import_keras3

    keras = import_keras3()
    keras.utils.set_random_seed(7)
    splits = _tabular()
    inputs = keras.Input((20,))
    h = keras.ops.tanh(keras.layers.Dense(64)(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    _keras3_fit_and_save(directory, keras.Model(inputs, outputs), splits, epochs=15,
                         name=name)
