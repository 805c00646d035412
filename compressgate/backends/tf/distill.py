"""Knowledge distillation in a fine-tune: the float model teaches the model being
compressed (Hinton et al. 2015).

The teacher is frozen and sees no augmentation, so its logits on the training split are
computed once (``Teacher.of``) and travel with the labels as the fit's targets: shuffled
with them, split apart by the loss. Every stage's ordinary ``fit`` (with tfmot's pruning,
clustering and QAT wrappers and callbacks) then distills unchanged.

Logits of a model whose output is already a softmax are ``log p``: ``log softmax(z) = z -
logsumexp(z)`` differs from ``z`` by one constant per row, which ``softmax(. / T)``
ignores, so the softened distributions are exactly those of the pre-softmax logits. ``p``
is clipped at ``PROB_FLOOR`` against ``log 0``; that moves only classes more than 69
logits below the top one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import import_keras, import_tf
from compressgate.recipes import Distill

PROB_FLOOR = 1e-30


def softmax_output(model) -> bool:
    """Whether ``model``'s one output is a softmax (its last layer's activation, a
    ``Softmax`` layer or ``Activation("softmax")``): its outputs are probabilities."""
    keras = import_keras()
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    return getattr(getattr(last, "activation", None), "__name__", "") == "softmax"


def logits(outputs, probabilities: bool):
    """Logits of a model's outputs (``log p`` for probabilities), as a tensor."""
    tf = import_tf()
    if not probabilities:
        return outputs
    return tf.math.log(tf.clip_by_value(outputs, PROB_FLOOR, 1.0))


def kd_loss(student_logits, teacher_logits, temperature: float):
    """Per row: ``T^2 * KL(softmax(t / T) || softmax(s / T))``."""
    tf = import_tf()
    t = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    s = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    return temperature ** 2 * tf.reduce_sum(tf.exp(t) * (t - s), axis=-1)


@dataclass(frozen=True)
class Teacher:
    """The float model's logits on the training split, and how to distill from them."""

    logits: np.ndarray
    spec: Distill
    # The label loss (the model's own compiled loss, or sparse categorical crossentropy).
    label_loss: Any
    # Whether the models' outputs are probabilities (softmax) or logits.
    probabilities: bool

    @classmethod
    def of(cls, teacher_model, x_train: np.ndarray, spec: Distill, label_loss: Any,
           where: str) -> Teacher:
        """The teacher's targets on ``x_train``; ``RecipeUnsupported`` for a model with
        more than one output (``where`` names it)."""
        if len(teacher_model.outputs) != 1:
            raise RecipeUnsupported(f"{where}: distillation needs a model with one "
                                    f"classification output, not {len(teacher_model.outputs)}")
        probabilities = softmax_output(teacher_model)
        outputs = teacher_model.predict(x_train, batch_size=256, verbose=0)
        values = np.asarray(logits(outputs, probabilities), dtype=np.float32)
        return cls(values, spec, label_loss, probabilities)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """The fit's ``y``: each row's label, then the teacher's logits."""
        return np.concatenate([np.asarray(labels, np.float32).reshape(-1, 1), self.logits],
                              axis=1)

    def loss(self):
        """The fit's loss on ``targets``: ``(1 - alpha) * label loss + alpha * kd_loss``."""
        keras = import_keras()
        label_loss = keras.losses.get(self.label_loss)
        alpha, temperature, probabilities = (self.spec.alpha, self.spec.temperature,
                                             self.probabilities)

        def distill_loss(y_true, y_pred):
            student = logits(y_pred, probabilities)
            soft = kd_loss(student, y_true[:, 1:], temperature)
            return (1.0 - alpha) * label_loss(y_true[:, :1], y_pred) + alpha * soft

        return distill_loss

    def metrics(self) -> list:
        """Top-1 accuracy on the label column (``"accuracy"`` would read the targets as
        one-hot rows)."""
        keras = import_keras()

        def accuracy(y_true, y_pred):
            return keras.metrics.sparse_categorical_accuracy(y_true[:, :1], y_pred)

        return [accuracy]
