"""Measure a ``.tflite`` file through the LiteRT interpreter: accuracy, size, latency.

Only ai-edge-litert and numpy here; TensorFlow is never imported.
"""

from __future__ import annotations

import gzip
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.measure.machine import other_runnable
from compressgate.native import filtered_stderr

if TYPE_CHECKING:  # scipy (1.7 s to import) stays out of the measurement child processes
    from compressgate.measure.stats import LatencyPairs

# LiteRT announces XNNPACK once per process on stderr, whatever the log level.
_DELEGATE_NOTE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")


def interpreter(tflite: bytes, num_threads: int = 1, *, name: str = "model"):
    """A LiteRT interpreter (XNNPACK on, as on devices) with tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with filtered_stderr(_DELEGATE_NOTE):
            interp = Interpreter(model_content=tflite, num_threads=num_threads)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise UserInputError(
            f"{name}: LiteRT cannot load the model: {str(exc).strip()[:200]}") from None
    return interp


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Feed ``x`` the way the model expects: quantized with its own scale/zero-point."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def predict(tflite: bytes, x: np.ndarray, *, batch: int | None = None,
            make_interpreter=interpreter) -> np.ndarray:
    """Float outputs for every row of ``x``; ``batch`` is the model's static batch, if any.
    ``make_interpreter(tflite)`` gives an allocated interpreter (default: LiteRT's)."""
    interp = make_interpreter(tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    step = batch or min(len(x), 512)
    if not batch:
        interp.resize_tensor_input(inp["index"], [step, *x.shape[1:]])
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    chunks = []
    for start in range(0, len(x), step):
        rows = x[start:start + step]
        if len(rows) < step:  # pad the last chunk to the allocated batch
            rows = np.concatenate([rows, np.repeat(rows[-1:], step - len(rows), axis=0)])
        # Fused recurrent ops keep their state in variable tensors across invokes;
        # every inference of a non-stateful model starts from zero state.
        interp.reset_all_variables()
        interp.set_tensor(inp["index"], quantize(rows, inp))
        interp.invoke()
        chunks.append(dequantize(interp.get_tensor(out["index"]), out))
    return np.concatenate(chunks)[: len(x)]


@dataclass(frozen=True)
class Measurement:
    """What the ``.tflite`` file does on the test split, and what it weighs."""

    accuracy: float
    top1: tuple[int, ...]
    size_bytes: int
    gzip_bytes: int
    sparsity: float
    input_dtype: str
    output_dtype: str
    ops: tuple[str, ...]
    float_ops: tuple[str, ...]
    # Dequantized outputs on the test split (6 decimals): fidelity against float.
    outputs: tuple[tuple[float, ...], ...] = ()


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def measure(tflite: bytes, x_test: np.ndarray, y_test: np.ndarray, *,
            batch: int | None = None, name: str = "model") -> Measurement:
    """Accuracy on the test split, raw and gzip size, weight sparsity, dtypes, ops."""
    info = flatbuffer.inspect(tflite, name=name)
    interp = interpreter(tflite, name=name)
    outputs = predict(tflite, x_test, batch=batch).reshape(len(x_test), -1)
    top1 = np.argmax(outputs, axis=-1)
    return Measurement(
        accuracy=float(np.mean(top1 == y_test)),
        top1=tuple(int(v) for v in top1),
        size_bytes=len(tflite),
        gzip_bytes=gzip_size(tflite),
        sparsity=info.sparsity,
        input_dtype=np.dtype(interp.get_input_details()[0]["dtype"]).name,
        output_dtype=np.dtype(interp.get_output_details()[0]["dtype"]).name,
        ops=tuple(info.op_names),
        float_ops=tuple(info.float_ops),
        outputs=tuple(tuple(row) for row in np.round(outputs, 6).tolist()),
    )


def class_accuracy(top1: tuple[int, ...] | np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy per true class (keys are the class ids as strings, for JSON)."""
    top1, labels = np.asarray(top1), np.asarray(labels)
    return {str(c): float(np.mean(top1[labels == c] == c)) for c in np.unique(labels)}


def set_input(interp, sample: np.ndarray, *, allocated: bool = True) -> None:
    """Give ``interp`` the input ``sample`` (one row with its batch dimension), resized to
    its shape and quantized as the input tensor says; allocates when it must."""
    inp = interp.get_input_details()[0]
    if tuple(inp["shape"]) != sample.shape:
        interp.resize_tensor_input(inp["index"], list(sample.shape))
        allocated = False
    if not allocated:
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], quantize(sample, inp))


def ready_invoke(tflite: bytes, sample: np.ndarray, num_threads: int = 1):
    """``Interpreter.invoke`` of a one-thread interpreter with ``sample`` already set."""
    interp = interpreter(tflite, num_threads=num_threads)
    set_input(interp, sample)
    return interp.invoke


# Interleaved pairs per latency figure, unless a project sets ``latency_pairs``.
LATENCY_PAIRS = 42


def sample_size(seconds: float, min_sample_seconds: float, repeat: float = 1) -> int:
    """Invokes per timed sample of a file whose one inference took ``seconds``: enough
    to last ``min_sample_seconds``; with a planted ``repeat`` (a slower kernel: that many
    invokes per inference), enough that rounding ``n * repeat`` to whole invokes moves
    the time by at most 1 %."""
    n = max(1, math.ceil(min_sample_seconds / max(seconds, 1e-7)))
    return n if repeat == 1 else max(n, math.ceil(50 / repeat))


def interleaved_latency(reference: bytes, candidate: bytes, sample: np.ndarray, *,
                        pairs: int = LATENCY_PAIRS, blocks: int = 6, warmup: int = 10,
                        min_sample_seconds: float = 0.002,
                        candidate_repeat: float = 1, num_threads: int = 1) -> LatencyPairs:
    """``interleaved_times`` as ``LatencyPairs`` (see there)."""
    from compressgate.measure.stats import LatencyPairs

    return LatencyPairs(**interleaved_times(
        reference, candidate, sample, pairs=pairs, blocks=blocks, warmup=warmup,
        min_sample_seconds=min_sample_seconds, candidate_repeat=candidate_repeat,
        num_threads=num_threads))


def interleaved_times(reference: bytes, candidate: bytes, sample: np.ndarray, *,
                      pairs: int = LATENCY_PAIRS, blocks: int = 6, warmup: int = 10,
                      min_sample_seconds: float = 0.002,
                      candidate_repeat: float = 1, num_threads: int = 1) -> dict:
    """Per-inference times of ``candidate`` and ``reference``, measured in alternating
    pairs at one thread (or ``num_threads``), so machine load moves both alike and their
    ratio stays put.

    ``sample`` is one input row with its batch dimension. The pairs are spread over
    ``blocks`` fresh pairs of interpreters: the ratio moves between interpreter instances
    (allocation, placement; measured: one instance of six 25 % off on the VNNI class, up to
    12-45 % on the AVX2 class), and pooling instances puts that variation into the
    interval instead of into a false alarm, while one odd instance moves few pairs.
    Each timed sample of either file runs enough of its own invokes to last
    ``min_sample_seconds`` (a file 30x slower than the other is not invoked as often as
    the fast one needs: that only lengthened the measurement); pair order alternates (AB,
    BA) to cancel the advantage of going first.
    Returns the fields of ``LatencyPairs`` (plain data: no scipy in a measuring child).
    """

    def timed(invoke, repeat: float, n: int) -> float:
        start = time.perf_counter()
        for _ in range(round(n * repeat)):
            invoke()
        return (time.perf_counter() - start) / n

    def warm_up(invoke) -> None:
        """``warmup`` invokes, or fewer (two at least) once they last a sample: ten
        invokes of a 3 ms file only lengthened the measurement."""
        start = time.perf_counter()
        for done in range(1, warmup + 1):
            invoke()
            if done >= 2 and time.perf_counter() - start >= min_sample_seconds:
                return

    ref_ms: list[float] = []
    cand_ms: list[float] = []
    others: list[int] = []
    per_block = max(1, math.ceil(pairs / blocks))
    n_ref = n_cand = 1
    for block in range(blocks):
        runners = [(ready_invoke(reference, sample, num_threads), 1),
                   (ready_invoke(candidate, sample, num_threads), candidate_repeat)]
        for invoke, _ in runners:
            warm_up(invoke)
        if block == 0:  # one sample size per file for the whole measurement
            n_ref, n_cand = (sample_size(timed(invoke, repeat, 3), min_sample_seconds, repeat)
                             for invoke, repeat in runners)
        (ref, ref_rep), (cand, cand_rep) = runners
        for i in range(per_block):
            if i % 2 == 0:
                r = timed(ref, ref_rep, n_ref)
                c = timed(cand, cand_rep, n_cand)
            else:
                c = timed(cand, cand_rep, n_cand)
                r = timed(ref, ref_rep, n_ref)
            ref_ms.append(r * 1e3)
            cand_ms.append(c * 1e3)
            running = other_runnable()  # between samples: never inside a timed one
            if running is not None:
                others.append(running)
    return {"reference_ms": tuple(ref_ms), "candidate_ms": tuple(cand_ms),
            "invokes_per_sample": n_ref, "candidate_invokes_per_sample": n_cand,
            "others_running": float(np.mean(others)) if others else None}
