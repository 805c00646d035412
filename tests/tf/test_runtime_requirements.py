"""The min-runtime verdict on a real dynamic-range conversion, and the table against the
converter's own ``min_runtime_version`` metadata."""

import dataclasses

import pytest

from compressgate.compat.runtime_versions import requirement
from compressgate.gate import rules
from compressgate.measure import flatbuffer

pytestmark = pytest.mark.tf
MODEL = "tabular_mlp"


def converter_min_runtime(tflite: bytes) -> str:
    """The ``min_runtime_version`` metadata TensorFlow's converter writes."""
    model = flatbuffer._schema().Model.GetRootAs(tflite, 0)
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        if meta.Name() == b"min_runtime_version":
            raw = model.Buffers(meta.Buffer()).DataAsNumpy().tobytes()
            return raw.rstrip(b"\0").decode()
    raise AssertionError("no min_runtime_version metadata")


def test_dynamic_range_needs_a_newer_runtime_than_declared(session):
    row = session.runner.row(MODEL, "ptq_dynamic")
    assert ["FULLY_CONNECTED", 12] in row.op_versions
    assert row.min_runtime == "2.17.0"
    promise = dataclasses.replace(session.promise(MODEL, "ptq_dynamic"), min_runtime="2.14")
    verdict = rules.check_conversion(row, promise)
    assert verdict.failed
    assert [r.note for r in verdict.regressions] == [
        "FULLY_CONNECTED v12 needs runtime 2.17.0 > declared 2.14"]
    new_enough = dataclasses.replace(promise, min_runtime="2.17")
    assert not rules.check_conversion(row, new_enough).failed


@pytest.mark.parametrize("recipe", ["float", "ptq_dynamic", "ptq_int8"])
def test_the_table_agrees_with_the_converters_own_metadata(session, recipe):
    tflite = session.runner.outcome(MODEL, recipe).tflite
    need = requirement((op.name, op.version) for op in flatbuffer.inspect(tflite).ops)
    assert not need.unknown
    assert need.minimum == converter_min_runtime(tflite)
