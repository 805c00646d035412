"""The legacy gate's agreement rule on hand-made outputs."""

import numpy as np
import pytest

from compressgate.workflows.legacy import agreement

REF = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)


def test_integer_outputs_may_differ_by_one_quantum_not_two():
    q = 1 / 256
    one = agreement(REF, REF + np.float32(q), scale=q)
    assert one.max_quanta == pytest.approx(1.0) and one.holds(float_atol=0)
    two = agreement(REF, REF + np.float32(2 * q), scale=q)
    assert two.top1 == 1.0 and not two.holds(float_atol=1.0)


def test_float_outputs_use_the_stated_tolerance():
    close = agreement(REF, REF + np.float32(1e-6))
    assert close.max_quanta is None
    assert close.holds(float_atol=1e-5) and not close.holds(float_atol=1e-7)


def test_one_flipped_prediction_fails_whatever_the_tolerance():
    flipped = REF.copy()
    flipped[2] = [0.7, 0.3]
    result = agreement(REF, flipped)
    assert result.top1 == pytest.approx(2 / 3)
    assert not result.holds(float_atol=10.0)


def test_outputs_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="shape"):
        agreement(REF, REF[:2])
