"""A QAT model that starts where the pretrained float model is.

tfmot's wrapped model does not: every range starts at [-6, 6] (activations, weights) or
[0, 0] (the model input); the activation ranges then move as an exponential average
with decay 0.999, about 0.1 % per training step, and BatchNormalization layers in
training mode replace their moving statistics at 1 % per step with those of the
fake-quantized batches. A short fine-tune of a pretrained model therefore converts with
activations clipped at about +-6 and moved BN statistics, whatever the learning rate.

Before fine-tuning: every range is set to the min/max that each quantizer sees over the
calibration split, layers in inference mode (the converter's post-training
calibration, applied through the fake quantization of the layers before it), and
BatchNormalization layers are frozen (inference mode; gamma and beta fixed, as tfmot
the converter folds them into the preceding kernel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from compressgate.backends.tf.env import import_keras, import_quant_ops

# Rows per calibration batch: memory, not accuracy (ranges are min/max over all rows).
BATCH = 256


def freeze_batchnorm(model) -> int:
    """Set every BatchNormalization layer of ``model`` (wrapped ones included) to
    ``trainable = False``: tf_keras then runs it in inference mode, so fine-tuning
    moves neither its statistics nor its scale and offset. Returns how many."""
    keras = import_keras()
    norms = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.trainable = False
    return len(norms)


@contextlib.contextmanager
def _observing() -> Iterator[None]:
    """tfmot's quantizers, while inside: every range follows what passes through it,
    whatever the training flag; the moving averages forget their start and take the
    min/max over all batches (eagerly: they are read between batches)."""
    ops = import_quant_ops()
    moving, last, all_values = ops.MovingAvgQuantize, ops.LastValueQuantize, ops.AllValuesQuantize
    seen: set = set()

    def observe_moving(inputs, min_var, max_var, **kwargs):
        # Eager: the variables hold numbers. Decay 0 sets the range to this batch's.
        first = min_var.ref() not in seen
        seen.add(min_var.ref())
        low, high = min_var.numpy(), max_var.numpy()
        out = moving(inputs, min_var, max_var, **{**kwargs, "is_training": True,
                                                   "ema_decay": 0.0})
        if not first:  # the min/max over all batches, as the converter's calibration
            min_var.assign(np.minimum(low, min_var.numpy()))
            max_var.assign(np.maximum(high, max_var.numpy()))
        return out

    def observe(op):
        return lambda *args, **kwargs: op(*args, **{**kwargs, "is_training": True})

    ops.MovingAvgQuantize = observe_moving
    ops.LastValueQuantize, ops.AllValuesQuantize = observe(last), observe(all_values)
    try:
        yield
    finally:
        ops.MovingAvgQuantize, ops.LastValueQuantize, ops.AllValuesQuantize = \
            moving, last, all_values


def calibrate_ranges(q_model, x: np.ndarray) -> None:
    """Set every quantization range of tfmot's ``q_model`` from ``x``, eagerly, layers
    in inference mode (no dropout, BatchNormalization on its moving statistics)."""
    with _observing():
        for start in range(0, len(x), BATCH):
            q_model(x[start:start + BATCH], training=False)


def prepare(q_model, x_calib: np.ndarray) -> None:
    """Freeze BatchNormalization and calibrate the ranges of a freshly wrapped model."""
    freeze_batchnorm(q_model)
    calibrate_ranges(q_model, x_calib)
