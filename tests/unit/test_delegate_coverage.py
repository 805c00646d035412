"""Delegate coverage: which ops XNNPACK took, as the interpreter planned them; the baseline
row that names an op newly left to LiteRT's built-in kernels."""

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from compressgate.gate import rules
from compressgate.gate.rules import Reference
from compressgate.measure import coverage
from compressgate.measure.coverage import DelegateCoverage
from compressgate.measure.stats import SideBySide
from compressgate.pipeline.record import ResultRow
from compressgate.tolerances import Tolerances

TFLITE = Path(__file__).resolve().parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"
METRICS = {"accuracy": 0.97, "size_bytes": 1000, "gzip_bytes": 800, "sparsity": 0.5}


def node(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": inputs, "outputs": outputs}


# -- reading the interpreter's nodes --------------------------------------------------------

def test_a_partition_holds_the_nodes_between_its_boundary_tensors():
    # t0 -> FC(0) -> t2 -> TOPK(1) -> t3 -> FC(2) -> t5 -> SOFTMAX(3) -> t6; weights t1, t4.
    # XNNPACK took FC 0 (one partition) and FC 2 + SOFTMAX 3 (another).
    nodes = [node(0, "FULLY_CONNECTED", [0, 1, -1], [2]), node(1, "TOPK_V2", [2], [3]),
             node(2, "FULLY_CONNECTED", [3, 4, -1], [5]), node(3, "SOFTMAX", [5], [6]),
             node(4, "DELEGATE", [0, 1], [2]), node(5, "DELEGATE", [3, 4], [6])]
    got = coverage.of_nodes(nodes)
    assert got == DelegateCoverage({"FULLY_CONNECTED": 2, "SOFTMAX": 1}, {"TOPK_V2": 1},
                                   partitions=2, builtin_nodes=(1,))
    assert got.describe() == "XNNPACK 3 of 4 ops; built-in kernels: TOPK_V2 1"


def test_without_a_delegate_node_every_op_runs_on_the_built_in_kernels():
    got = coverage.of_nodes([node(0, "QUANTIZE", [0], [1]), node(1, "CONV_2D", [1, 2], [3])])
    assert got.delegated == {} and got.builtin == {"CONV_2D": 1, "QUANTIZE": 1}
    assert (got.partitions, got.off, got.builtin_nodes) == (0, 2, (0, 1))


def test_the_coverage_of_a_known_file_is_what_the_interpreter_reports():
    """The walk over the fused plan against LiteRT's one-node-per-partition mode (each
    DELEGATE node's outputs name the one op it replaced) and against the ops the file
    holds (the interpreter without its default delegates)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data = TFLITE.read_bytes()
    got = coverage.of_file(data)
    assert got.delegated == {"FULLY_CONNECTED": 3} and got.builtin == {"SOFTMAX": 1}
    assert got.partitions == 1 and got.subgraphs == 1

    single = Interpreter(model_content=data, experimental_disable_delegate_node_fusion=True)
    single.allocate_tensors()
    nodes = single._get_ops_details()
    producer = {int(t): n["op_name"] for n in nodes if n["op_name"] != "DELEGATE"
                for t in n["outputs"]}
    replaced = Counter(producer[int(t)] for n in nodes if n["op_name"] == "DELEGATE"
                       for t in n["outputs"])
    assert dict(replaced) == got.delegated

    plain = Interpreter(model_content=data, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    plain.allocate_tensors()
    assert Counter(n["op_name"] for n in plain._get_ops_details()) == \
        Counter(got.delegated) + Counter(got.builtin)


def test_coverage_round_trips_through_a_summary_row():
    cov = DelegateCoverage({"CONV_2D": 3}, {"SOFTMAX": 1}, 1, 2, (7,))
    doc = row(coverage=cov).to_dict()
    assert (doc["xnnpack_ops"], doc["builtin_ops"], doc["delegate_partitions"]) == (
        {"CONV_2D": 3}, {"SOFTMAX": 1}, 1)
    assert ResultRow.from_dict(doc).coverage == cov
    assert "xnnpack_ops" not in row().to_dict() and ResultRow.from_dict({
        "model": "m", "recipe": "r"}).coverage is None


# -- the baseline row --------------------------------------------------------------------

def row(**fields):
    return dataclasses.replace(ResultRow.from_dict({
        "model": "m", "recipe": "ptq_int8", "converted": True, "accuracy": 0.97,
        "float_accuracy": 0.98, "accuracy_drop_pts": 1.0, "size_bytes": 1000,
        "size_ratio": 4.0, "gzip_bytes": 800, "gzip_ratio": 4.5, "sparsity": 0.5}), **fields)


def coverage_rows(new, accepted):
    side = SideBySide(False, accepted_coverage=accepted)
    verdict = rules.check_baseline(row(coverage=new), Reference(METRICS, side=side),
                                   Tolerances())
    return verdict, [r for r in verdict.rows if r.metric == rules.COVERAGE_ROW]


ACCEPTED = DelegateCoverage({"FULLY_CONNECTED": 3}, {"SOFTMAX": 1}, 1)


def test_an_op_newly_left_to_the_built_in_kernels_is_a_regression_naming_it():
    new = DelegateCoverage({"FULLY_CONNECTED": 1}, {"FULLY_CONNECTED": 2, "SOFTMAX": 1}, 1)
    verdict, [got] = coverage_rows(new, ACCEPTED)
    assert verdict.failed and got.status == "regression" and got.key == "ops_off_xnnpack"
    assert (got.measured, got.expected) == (3, 1)
    assert got.note.startswith("ops off XNNPACK: FULLY_CONNECTED 0 -> 2")


def test_a_new_op_that_xnnpack_lacks_is_named_even_when_another_op_came_back():
    new = DelegateCoverage({"FULLY_CONNECTED": 3, "SOFTMAX": 1}, {"TOPK_V2": 1}, 2)
    _, [got] = coverage_rows(new, ACCEPTED)
    assert got.status == "regression" and "TOPK_V2 0 -> 1" in got.note
    assert "SOFTMAX" not in got.note.split("(")[0]


def test_the_same_coverage_passes_and_fewer_ops_off_is_an_improvement():
    verdict, [same] = coverage_rows(ACCEPTED, ACCEPTED)
    assert not verdict.failed and same.status == "pass"
    assert same.note.startswith("XNNPACK 3 of 4 ops; built-in kernels: SOFTMAX 1")
    better = DelegateCoverage({"FULLY_CONNECTED": 3, "SOFTMAX": 1}, {}, 1)
    _, [got] = coverage_rows(better, ACCEPTED)
    assert got.status == "improved" and got.note.startswith("back on XNNPACK: SOFTMAX 1 -> 0")


def test_the_coverage_row_names_every_op_that_moved():
    new = DelegateCoverage({"FULLY_CONNECTED": 1}, {"FULLY_CONNECTED": 2, "SOFTMAX": 1,
                                                     "TOPK_V2": 1}, 1)
    _, [got] = coverage_rows(new, ACCEPTED)
    assert (got.tolerance, got.note) == (
        "no op newly off", "ops off XNNPACK: FULLY_CONNECTED 0 -> 2, TOPK_V2 0 -> 1 (the "
        "accepted file side by side, this run)")
    _, [back] = coverage_rows(ACCEPTED, new)
    assert (back.tolerance, back.note) == (
        "no op newly off", "back on XNNPACK: FULLY_CONNECTED 2 -> 0, TOPK_V2 1 -> 0 (the "
        "accepted file side by side, this run)")


@pytest.mark.parametrize("new, accepted", [(None, ACCEPTED), (ACCEPTED, None)])
def test_no_row_without_both_coverages(new, accepted):
    assert coverage_rows(new, accepted)[1] == []


# -- where the time goes ------------------------------------------------------------------

def test_the_ops_off_xnnpack_are_cut_out_and_compute_what_they_compute_in_the_file():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from compressgate.measure import flatbuffer, litert, offload

    data = TFLITE.read_bytes()
    cov = coverage.of_file(data)
    sub, inputs = offload.submodel(data, cov.builtin_nodes)
    assert [op.name for op in flatbuffer.inspect(sub).ops] == ["SOFTMAX"]
    whole = Interpreter(model_content=data, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    whole.allocate_tensors()
    inp, out = whole.get_input_details()[0], whole.get_output_details()[0]
    sample = (np.arange(inp["shape"][-1], dtype=np.float32) / 10)[None]
    whole.set_tensor(inp["index"], litert.quantize(sample, inp))
    whole.invoke()
    expected = whole.get_tensor(out["index"])
    [fed] = offload.tensor_values(data, sample, inputs)
    alone = Interpreter(model_content=sub)
    alone.allocate_tensors()
    alone.set_tensor(alone.get_input_details()[0]["index"], fed)
    alone.invoke()
    np.testing.assert_array_equal(
        alone.get_tensor(alone.get_output_details()[0]["index"]), expected)

    timed, why = offload.builtin_time(data, sample, cov, samples=3)
    assert why == "" and timed.total_ms > 0 and timed.builtin_ms > 0
    assert 0 < timed.share <= 1
    assert offload.describe(cov, timed).startswith(
        f"{timed.share:.0%} of invoke time in the 1 of 4 ops off XNNPACK (SOFTMAX 1)")


def test_a_file_all_on_xnnpack_says_so_and_times_nothing():
    cov = DelegateCoverage({"CONV_2D": 3}, {}, 1)
    from compressgate.measure import offload

    assert offload.builtin_time(b"not read", np.zeros((1, 2), np.float32), cov) == (
        None, "every op runs on XNNPACK")
    assert offload.describe(cov, None) == \
        "all 3 ops run on XNNPACK: the time is not in built-in kernels"


def test_ops_that_cannot_be_cut_out_leave_the_share_unmeasured_and_say_why():
    from compressgate.measure import offload

    cov = DelegateCoverage({}, {"TOPK_V2": 1}, 0, builtin_nodes=(0,))
    timed, why = offload.builtin_time(b"TFL3 not a model", np.zeros((1, 2), np.float32), cov)
    assert timed is None and why.startswith("the built-in ops could not be run alone: ")
    assert offload.describe(cov, timed, why).startswith(
        "ops off XNNPACK (LiteRT's built-in kernels): TOPK_V2 1; share not measured: ")


def test_a_runner_reads_each_files_coverage_once(monkeypatch):
    from types import SimpleNamespace

    from compressgate.pipeline.runner import Runner

    calls = []
    monkeypatch.setattr(coverage, "of_file", lambda data, name: calls.append(name) or name)
    runner = Runner({}, cache=SimpleNamespace(), isolate=False)
    assert runner.delegate_coverage(b"a", name="m x r") == "m x r"
    assert runner.delegate_coverage(b"a", name="m accepted") == "m x r"  # the same bytes
    assert runner.delegate_coverage(b"b", name="n x r") == "n x r"
    assert calls == ["m x r", "n x r"]
