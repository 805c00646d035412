"""Distillation in the fine-tune (``backends/tf/distill.py``): the KD loss is the
hand-computed one, the combined loss is the label loss at alpha = 0, log-probabilities
soften exactly as the logits they come from, a distilled student learns the teacher's
answers rather than the labels, and a distilled recipe converts."""

import math

import numpy as np
import pytest
import tiny

from compressgate.backends.tf import convert
from compressgate.backends.tf.distill import Teacher, kd_loss, softmax_output
from compressgate.backends.tf.env import deterministic, import_keras, import_tf
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.project.models import Dataset
from compressgate.recipes import Distill, get_recipe

pytestmark = pytest.mark.tf


def test_kd_loss_is_the_hand_computed_one():
    # Teacher logits [0, ln 3] at T = 2 soften to [1, sqrt 3] / (1 + sqrt 3); the
    # student's [0, 0] to [1/2, 1/2]. KL(p || q) = sum p ln(p / q), times T^2.
    p = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]
    expected = 4 * sum(pi * math.log(pi / 0.5) for pi in p)
    got = kd_loss(np.array([[0.0, 0.0]]), np.array([[0.0, math.log(3)]]), 2.0).numpy()
    assert got == pytest.approx([expected], rel=1e-6)
    # At T = 1: [1/4, 3/4] against [1/2, 1/2], no factor.
    expected_t1 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    got = kd_loss(np.array([[0.0, 0.0]]), np.array([[0.0, math.log(3)]]), 1.0).numpy()
    assert got == pytest.approx([expected_t1], rel=1e-6)
    # A student that matches the teacher loses nothing.
    assert kd_loss(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]]), 3.0).numpy() == \
        pytest.approx([0.0], abs=1e-7)


def test_log_probabilities_soften_exactly_as_their_logits():
    tf = import_tf()
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(0, 3, (5, 4)), rng.normal(0, 3, (5, 4))
    on_logits = kd_loss(student, teacher, 4.0).numpy()
    logp = [tf.math.log(tf.nn.softmax(z)) for z in (student, teacher)]
    np.testing.assert_allclose(kd_loss(*logp, 4.0).numpy(), on_logits, rtol=1e-5)


def combined(alpha: float, y_pred: np.ndarray, labels: np.ndarray, teacher: np.ndarray):
    spec = Distill(temperature=2.0, alpha=alpha)
    t = Teacher(teacher.astype(np.float32), spec, "sparse_categorical_crossentropy", True)
    return t.loss()(t.targets(labels), y_pred.astype(np.float32)).numpy()


def test_the_combined_loss_is_the_label_loss_at_alpha_zero_and_kd_at_one():
    keras = import_keras()
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=6)
    labels = rng.integers(0, 3, size=6)
    teacher_logits = rng.normal(0, 2, (6, 3))
    label_loss = keras.losses.sparse_categorical_crossentropy(labels, probs).numpy()
    np.testing.assert_allclose(combined(0.0, probs, labels, teacher_logits), label_loss,
                               rtol=1e-5)
    soft = kd_loss(np.log(probs), teacher_logits, 2.0).numpy()
    np.testing.assert_allclose(combined(1.0, probs, labels, teacher_logits), soft, rtol=1e-5)
    np.testing.assert_allclose(combined(0.25, probs, labels, teacher_logits),
                               0.75 * label_loss + 0.25 * soft, rtol=1e-5)


def mlp(keras, seed: int):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.layers.Input((8,)),
                             keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def agreement(a, b, x) -> float:
    return float(np.mean(np.argmax(a.predict(x, verbose=0), -1)
                         == np.argmax(b.predict(x, verbose=0), -1)))


def test_a_distilled_student_learns_the_teachers_answers_not_the_labels():
    """Labels shuffled to noise: at alpha = 1 the student follows the teacher, at alpha =
    0 (the label loss) it cannot."""
    deterministic()
    keras = import_keras()
    data = tiny.make_data()
    teacher = mlp(keras, 0)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss="sparse_categorical_crossentropy")
    teacher.fit(data["x_train"], data["y_train"], epochs=20, verbose=0)
    assert softmax_output(teacher)
    noise = np.random.default_rng(3).permutation(data["y_train"])
    split = Dataset(data["x_train"], noise, data["x_calib"], data["y_calib"],
                    data["x_test"], data["y_test"])
    agree = {}
    for alpha in (0.0, 1.0):
        recipe = get_recipe("channel_prune_kd_int8").with_overrides({"finetune": {
            "epochs": 20, "learning_rate": 1e-2,
            "distill": {"alpha": alpha, "temperature": 2.0}}})
        targets = Teacher.of(teacher, split.x_train, recipe.finetune.distill,
                             "sparse_categorical_crossentropy", "tiny")
        student = mlp(keras, 1)
        convert._fit(student, teacher, recipe, split, [], targets)
        agree[alpha] = agreement(student, teacher, data["x_test"])
    assert agree[1.0] > 0.9 > 0.6 > agree[0.0], agree


def test_a_distilled_recipe_converts_and_differs_from_the_plain_fine_tune(tmp_path):
    tiny.build(tmp_path)
    runner = Runner(config.load(tmp_path / "manifest.json").specs,
                    ResultCache(tmp_path / "cache"), isolate=False)
    # tiny_mlp has one hidden layer: prune it (skip_first_and_last would leave nothing).
    fields = {"finetune": {"epochs": 2}, "channel_prune": {"skip_first_and_last": False}}
    kd = get_recipe("channel_prune_kd_int8").with_overrides(fields)
    plain = get_recipe("channel_prune_int8").with_overrides(fields)
    row, plain_row = runner.row(tiny.MODEL, kd), runner.row(tiny.MODEL, plain)
    assert row.converted, row.error
    assert (row.input_dtype, row.output_dtype) == ("int8", "int8")
    assert row.finetune_drop_pts is not None and row.accuracy > 0.8
    assert row.tflite_sha256 != plain_row.tflite_sha256
    qat = runner.row(tiny.MODEL, get_recipe("qat_kd_int8").with_overrides(
        {"finetune": {"epochs": 1}}))
    assert qat.converted and qat.accuracy > 0.8, qat.error
