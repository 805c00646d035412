"""A small pretrained mini-Xception (Arriaga et al. 2017: SeparableConv2D + BatchNorm
residual blocks joined by Add), trained on scikit-learn's digits and saved as ``.h5``
with its data and a manifest: a pretrained model loaded as a user would load one.

The original takes 64x64x1 faces into 7 classes with 58K parameters; this one takes
the 8x8 digits 0-6 upsampled to 24x24x1 and has two residual modules of 8 and 16
filters, so that a fine-tune of it takes seconds.
"""

import json
from pathlib import Path

import numpy as np

MODEL = "mini_xception"
CLASSES = 7
SIZE = 24


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits 0-6, upsampled 3x to 24x24x1, scaled to [-1, 1] as the
    original's faces were; seeded split train / calib / test."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = y < CLASSES
    x, y = x[keep].reshape(-1, 8, 8), y[keep]
    x = np.kron(x, np.ones((SIZE // 8, SIZE // 8)))[..., None] / 8.0 - 1.0
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    return {"x_train": x[:700], "y_train": y[:700], "x_calib": x[700:850],
            "y_calib": y[700:850], "x_test": x[850:], "y_test": y[850:]}


def residual_module(layers, x, width: int):
    """mini_XCEPTION's module: two SeparableConv2D + BatchNorm, max pooling, and a 1x1
    stride-2 Conv2D + BatchNorm shortcut joined by Add."""
    residual = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False)(x)
    residual = layers.BatchNormalization()(residual)
    x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    return layers.add([x, residual])


def mini_xception(keras, filters: tuple[int, ...] = (8, 16)):
    """The mini_XCEPTION graph (its layer names as Keras gives them), narrowed."""
    layers = keras.layers
    inputs = layers.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Conv2D(4, 3, use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    for width in filters:
        x = residual_module(layers, x, width)
    x = layers.Conv2D(CLASSES, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=MODEL)


def converge_batchnorm(keras, model, x: np.ndarray) -> None:
    """Moving statistics as a long training leaves them (those of the training split
    under the final weights), which 8 epochs at momentum 0.99 do not reach."""
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99


def build(directory: Path, epochs: int = 8, logit_scale: float = 6.0) -> Path:
    """Train the model (seeded) and write ``mini_xception.h5``, its data and a manifest.

    ``logit_scale`` multiplies the last Conv2D's kernel and bias (top-1 unchanged): the
    logits of a model trained to convergence keep growing (here +-16 at the pooling
    after 8 epochs, +-27 after 40), and tfmot's QAT clips every activation at +-6 until
    its ranges have moved."""
    from compressgate.backends.tf.env import deterministic, import_keras

    directory.mkdir(parents=True, exist_ok=True)
    deterministic()
    keras = import_keras()
    data = digits()
    np.savez(directory / "digits7.npz", **data)
    model = mini_xception(keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=32, verbose=0)
    converge_batchnorm(keras, model, data["x_train"])
    head = model.layers[-3]  # the Conv2D before the pooling
    kernel, bias = head.get_weights()
    head.set_weights([kernel * logit_scale, bias * logit_scale])
    model.save(directory / f"{MODEL}.h5")
    manifest = {"models": {MODEL: {"model": f"{MODEL}.h5", "data": "digits7.npz"}}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
