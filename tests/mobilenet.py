"""A small MobileNetV2-style network whose channel ranges differ by orders of magnitude:
the case data-free quantization (Nagel et al. 2019) targets, written with its data and a
``compressgate.toml`` as a user's model is.

The network: a 3x3 stem and four inverted-residual blocks (1x1 expansion, 3x3
depthwise, 1x1 projection, each with BatchNorm, ReLU6 after the first two, Add where the
shapes allow), a 1x1 head, global pooling and a softmax Dense; 24x24x1 inputs (the
scikit-learn digits upsampled 3x), 10 classes, about 52K parameters, trained a few
epochs.

The imbalance is constructed, and this is how: after training, each block's depthwise
channels are multiplied by ``10**-u`` (``u`` uniform in [0, ``decades``], seeded)
through that BatchNorm's gamma and beta, and the projection's matching input channels
by ``10**u``. ReLU6 commutes with a factor below 1 wherever the channel stays under its
clip, so only channels whose activation stayed under 6 on every split (train, calib,
test) are scaled: the float model computes the same outputs (checked on the test split,
``build`` raises otherwise). Real networks get such ranges from training and BatchNorm
folding (the paper's MobileNetV2); here they are planted, in a float-preserving way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from xception import converge_batchnorm

MODEL = "mobilenet_dfq"
CLASSES = 10
SIZE = 24
BLOCKS = (("block1", 4, 24, 2), ("block2", 4, 24, 1), ("block3", 4, 40, 2),
          ("block4", 6, 40, 1))
RECIPES = ("float", "ptq_int8", "ptq_int8_per_tensor", "dfq_int8", "dfq_int8_per_tensor")


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits upsampled 3x to 24x24x1 in [-1, 1]; seeded split."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = np.kron(x.reshape(-1, 8, 8), np.ones((SIZE // 8, SIZE // 8)))[..., None] / 8.0 - 1.0
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    return {"x_train": x[:1100], "y_train": y[:1100], "x_calib": x[1100:1300],
            "y_calib": y[1100:1300], "x_test": x[1300:], "y_test": y[1300:]}


def inverted_residual(layers, x, name: str, expand: int, width: int, stride: int):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project (linear), Add."""
    inputs, channels = x, x.shape[-1]
    x = layers.Conv2D(channels * expand, 1, use_bias=False, name=f"{name}_expand")(x)
    x = layers.BatchNormalization(name=f"{name}_expand_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_expand_relu")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_project")(x)
    x = layers.BatchNormalization(name=f"{name}_project_bn")(x)
    if stride == 1 and channels == width:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def mobilenet(keras):
    layers = keras.layers
    inputs = layers.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    for name, expand, width, stride in BLOCKS:
        x = inverted_residual(layers, x, name, expand, width, stride)
    x = layers.Conv2D(160, 1, use_bias=False, name="head")(x)
    x = layers.ReLU(6.0, name="head_relu")(layers.BatchNormalization(name="head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=MODEL)


def imbalance(keras, model, x: np.ndarray, decades: float, seed: int = 0) -> int:
    """Scale each block's depthwise channels by 10**-u and the projection's inputs by
    10**u where the ReLU6 clip is never reached on ``x``; returns the channels scaled."""
    rng = np.random.default_rng(seed)
    scaled = 0
    for name, *_ in BLOCKS:
        probe = keras.Model(model.input, model.get_layer(f"{name}_dw_relu").output)
        peak = probe.predict(x, batch_size=256, verbose=0).max(axis=(0, 1, 2))
        factor = 10.0 ** -rng.uniform(0, decades, peak.shape)
        factor = np.where(peak < 6.0 * 0.999, factor, 1.0).astype(np.float32)
        scaled += int(np.sum(factor < 1))
        norm = model.get_layer(f"{name}_dw_bn")
        norm.gamma.assign(norm.gamma.numpy() * factor)
        norm.beta.assign(norm.beta.numpy() * factor)
        project = model.get_layer(f"{name}_project")
        project.kernel.assign(project.kernel.numpy() / factor[:, None])
    return scaled


def build(directory: Path, epochs: int = 6, decades: float = 3.0) -> Path:
    """Train (seeded), plant the imbalance, and write ``mobilenet_dfq.keras``, its data
    and a ``compressgate.toml`` naming the DFQ recipes."""
    from compressgate.backends.tf.env import deterministic, import_keras

    directory.mkdir(parents=True, exist_ok=True)
    deterministic()
    keras = import_keras()
    data = digits()
    np.savez(directory / "digits10.npz", **data)
    model = mobilenet(keras)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=32, verbose=0)
    # A few hundred steps leave the moving statistics far from the weights' (test
    # accuracy 10 % before this, 97 % after).
    converge_batchnorm(keras, model, data["x_train"])
    before = model.predict(data["x_test"], batch_size=256, verbose=0)
    everything = np.concatenate([data["x_train"], data["x_calib"], data["x_test"]])
    imbalance(keras, model, everything, decades)
    after = model.predict(data["x_test"], batch_size=256, verbose=0)
    change = float(np.max(np.abs(after - before)))
    if change > 1e-4:
        raise AssertionError(f"{MODEL}: the planted imbalance changed the float outputs by "
                             f"{change:.2g} on the test split")
    model.save(directory / f"{MODEL}.keras")
    recipes = ", ".join(f'"{r}"' for r in RECIPES)
    (directory / "compressgate.toml").write_text(
        f'[models.{MODEL}]\nmodel = "{MODEL}.keras"\ndata = "digits10.npz"\n'
        f"recipes = [{recipes}]\n")
    return directory
