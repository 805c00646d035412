"""Target checks on real conversions: an op TFLM lacks fails with the op named, a larger
intermediate tensor fails the arena check, and the fixtures' rows carry the figures."""

from dataclasses import replace

import numpy as np
import pytest
from tiny import make_data

from compressgate.gate import targets as targets_rules
from compressgate.gate.records import Status
from compressgate.measure import targets
from compressgate.pipeline.record import ResultRow, TargetFigures
from compressgate.project.models import Dataset
from compressgate.recipes import get_recipe
from compressgate.tolerances import Tolerances

pytestmark = pytest.mark.tf
ARENA = targets.ARENA_FIGURE
INT8 = get_recipe("ptq_int8")


def int8_file(layers) -> bytes:
    """A seeded, untrained MLP on the tiny data (``layers(keras, tf)`` after the input),
    converted by the ptq_int8 recipe's converter."""
    from compressgate.backends.tf.env import (
        deterministic,
        import_keras,
        import_tf,
        make_converter,
        quiet,
    )

    deterministic()
    keras, tf = import_keras(), import_tf()
    model = keras.Sequential([keras.layers.Input((8,)), *layers(keras, tf)])
    with quiet():
        return make_converter(model, INT8, Dataset(**make_data())).convert()


def judged(tflite: bytes, accepted: dict | None = None):
    data = make_data()
    figures = targets.measure(tflite, data["x_test"][:40], data["y_test"][:40])
    row = ResultRow("tiny", "ptq_int8", True, accuracy=0.5,
                    targets=TargetFigures.from_dict({"targets": ["tflm"], **figures}))
    # FULLY_CONNECTED + SOFTMAX models differ from the reference kernels by 1 quantum on
    # TFLM (measured here and on tabular_mlp): the tolerance the fixture states.
    promise = replace(INT8.promise, max_tflm_quanta=1)
    verdict = targets_rules.check_targets(row, promise, accepted or {}, Tolerances())
    return row, {r.metric: r for r in verdict.rows}, verdict


def dense(width):
    return lambda keras, tf: [keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")]


def test_an_op_tflm_lacks_fails_with_the_op_named():
    def top_k(keras, tf):
        return [keras.layers.Dense(16, activation="relu"),
                keras.layers.Lambda(lambda t: tf.math.top_k(t, k=8).values),
                keras.layers.Dense(3, activation="softmax")]

    row, rows, verdict = judged(int8_file(top_k))
    assert verdict.failed and row.targets.tflm_loads is False
    assert rows["runs on TFLM"].note == "op TOPK_V2 is not in TFLM's op resolver"
    assert row.targets.kernel_agreement is not None  # LiteRT itself runs it


def test_a_larger_intermediate_tensor_fails_the_arena_check():
    small, _, healthy = judged(int8_file(dense(32)))
    arena = small.targets.tflm_arena_bytes
    assert not healthy.failed and arena > 0
    accepted = {ARENA: arena}
    assert not judged(int8_file(dense(32)), accepted)[2].failed  # the same file: same arena
    grown, rows, verdict = judged(int8_file(dense(512)), accepted)
    assert grown.targets.tflm_arena_bytes > arena * 1.01
    assert rows[ARENA].status == Status.REGRESSION and verdict.failed


def test_every_fixture_row_has_its_parity_and_int8_rows_their_arena(session):
    for recipe in ("float", "ptq_dynamic", "ptq_int8"):
        row = session.row("tabular_mlp", recipe)
        assert 0.9 <= row.targets.kernel_agreement <= 1.0, row
        assert row.targets.rows == min(targets.ROWS, row.test_rows)
    assert session.row("tabular_mlp", "ptq_dynamic").targets.tflm_loads is False
    int8 = session.row("tabular_mlp", "ptq_int8")
    stored = session._load("tabular_mlp", "ptq_int8")
    assert int8.targets.tflm_arena_bytes == stored.metrics[ARENA]
    assert int8.targets.tflm_accuracy is not None
    assert not session.run_check("tabular_mlp", "ptq_int8", "targets").failed
    assert np.isclose(int8.targets.tflm_ref_agreement, 1.0)
