"""Where the time goes: the share of one inference spent in the ops XNNPACK did not take.

LiteRT does not expose a per-op profile to Python. Instead the ops left to the built-in
kernels (``DelegateCoverage.builtin_nodes``) are cut out into a sub-model of their own:
the same operators, tensors and weights, its inputs the tensors they read from the rest
of the graph, fed with the values those tensors hold for the timed sample (taken from
the whole file run on the built-in kernels with every tensor kept). The sub-model runs
on the built-in kernels, as those ops do in the file; it is timed alternately with the
whole file (XNNPACK on), and the share is the median ratio of back-to-back pairs. Timed
alone, the ops miss the caches the rest of the graph warmed or cooled, so the share is
an estimate: measured 97-100 % on the fixtures' files where XNNPACK took nothing but a
SOFTMAX or a STRIDED_SLICE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compressgate.measure.coverage import DelegateCoverage
from compressgate.measure.litert import ready_invoke, sample_size, set_input


@dataclass(frozen=True)
class BuiltinTime:
    """Median ms per inference of the whole file (XNNPACK on) and of its built-in ops
    alone, and the median of their per-pair ratios."""

    total_ms: float
    builtin_ms: float
    # Median of the per-pair ratios builtin/total (each pair timed back to back, so
    # machine load moves both alike; measured: steadier than the ratio of medians or of
    # fastest samples at load 5-6 on 2 cores).
    pair_ratio: float = 0.0

    @property
    def share(self) -> float:
        """Fraction of an inference in the built-in ops (capped at 1: timing noise)."""
        return min(self.pair_ratio, 1.0)


def _resolver_without_delegates():
    from ai_edge_litert.interpreter import OpResolverType

    return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def submodel(tflite: bytes, nodes: tuple[int, ...]) -> tuple[bytes, list[int]]:
    """A ``.tflite`` holding only the main subgraph's operators ``nodes`` (in order), and
    the file's tensor indices that became its inputs."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = model.subgraphs[0]
    ops = [graph.operators[i] for i in nodes]
    made = {int(t) for op in ops for t in op.outputs}

    def fixed(t: int) -> bool:  # weights and state tensors stay in the sub-model
        tensor = graph.tensors[t]
        buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) \
            else None
        stored = buffer is not None and (
            (buffer.data is not None and len(buffer.data) > 0) or (buffer.size or 0) > 0)
        return bool(tensor.isVariable) or stored

    inputs = list(dict.fromkeys(int(t) for op in ops for t in op.inputs
                                if t >= 0 and int(t) not in made and not fixed(int(t))))
    graph.operators, graph.inputs = ops, inputs
    graph.outputs = list(dict.fromkeys(int(t) for op in ops for t in op.outputs))
    model.signatureDefs = []  # they name the whole file's inputs and outputs
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), inputs


def tensor_values(tflite: bytes, sample: np.ndarray, tensors: list[int]) -> list[np.ndarray]:
    """What ``tensors`` hold after one inference of ``sample`` on the built-in kernels."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=_resolver_without_delegates())
    set_input(interp, sample, allocated=False)
    interp.invoke()
    return [np.array(interp.get_tensor(t)) for t in tensors]


def _sub_invoke(sub: bytes, values: list[np.ndarray]) -> Callable[[], None]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=sub, num_threads=1,
                         experimental_op_resolver_type=_resolver_without_delegates())
    for detail, value in zip(interp.get_input_details(), values, strict=True):
        if tuple(detail["shape"]) != value.shape:
            interp.resize_tensor_input(detail["index"], list(value.shape))
    interp.allocate_tensors()
    for detail, value in zip(interp.get_input_details(), values, strict=True):
        interp.set_tensor(detail["index"], value)
    return interp.invoke


def builtin_time(tflite: bytes, sample: np.ndarray, cov: DelegateCoverage, *,
                 samples: int = 24, blocks: int = 3, min_sample_seconds: float = 0.002,
                 ) -> tuple[BuiltinTime | None, str]:
    """(the whole file and its built-in ops timed alternately, why not measured).
    ``sample`` is one input row with its batch dimension. The samples are spread over
    ``blocks`` fresh pairs of interpreters: a time moves between interpreter instances
    (see ``litert.interleaved_times``)."""
    if not cov.builtin_nodes:
        return None, "every op runs on XNNPACK"
    if cov.subgraphs > 1:
        return None, "the file has several subgraphs: its ops cannot be cut out"
    try:
        sub, inputs = submodel(tflite, cov.builtin_nodes)
        values = tensor_values(tflite, sample, inputs)
        _sub_invoke(sub, values)()
    except Exception as exc:  # an estimate for a note must never hide the verdict it explains
        return None, (f"the built-in ops could not be run alone: {type(exc).__name__}: "
                      f"{str(exc).strip()[:160]}")

    def timed(invoke: Callable[[], None], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            invoke()
        return (time.perf_counter() - start) / n

    whole_s, sub_s = [], []
    n = {}
    for block in range(blocks):
        whole, alone = ready_invoke(tflite, sample), _sub_invoke(sub, values)
        for invoke in (whole, alone):
            timed(invoke, 5)
        if block == 0:  # each its own sample size, as latency pairs
            n = {"whole": sample_size(timed(whole, 3), min_sample_seconds),
                 "alone": sample_size(timed(alone, 3), min_sample_seconds)}
        for i in range(max(1, samples // blocks)):  # alternating order, as latency pairs
            if i % 2 == 0:
                a = timed(whole, n["whole"])
                b = timed(alone, n["alone"])
            else:
                b = timed(alone, n["alone"])
                a = timed(whole, n["whole"])
            whole_s.append(a)
            sub_s.append(b)
    ratios = [b / a for a, b in zip(whole_s, sub_s, strict=True)]
    return BuiltinTime(float(np.median(whole_s)) * 1e3, float(np.median(sub_s)) * 1e3,
                       float(np.median(ratios))), ""


def describe(cov: DelegateCoverage, timed: BuiltinTime | None, why: str = "") -> str:
    """One line for a failure note or a diagnosis: the ops off XNNPACK and their share."""
    if cov.all_delegated:
        return f"all {cov.total} ops run on XNNPACK: the time is not in built-in kernels"
    ops = ", ".join(f"{op} {n}" for op, n in cov.builtin.items())
    if timed is None:
        return f"ops off XNNPACK (LiteRT's built-in kernels): {ops}; share not measured: {why}"
    return (f"{timed.share:.0%} of invoke time in the {cov.off} of {cov.total} ops off "
            f"XNNPACK ({ops}): those ops alone {timed.builtin_ms:.4f} ms, the whole file "
            f"{timed.total_ms:.4f} ms")
