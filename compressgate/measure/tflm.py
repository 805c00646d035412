"""Run a ``.tflite`` file on TensorFlow Lite Micro (the ``tflite-micro`` package).

TFLM says why it refuses a model, and how much of its tensor arena a model used, only on
C-level stderr (``Didn't find op for builtin opcode 'TOPK_V2'``, ``Arena allocation
total N bytes``); the Python side gets ``RuntimeError: TFLM failed to allocate
tensors``. So every call into it runs with file descriptors 1 and 2 captured, and the
text is parsed. Run it in a child process (``compressgate.measure.targets``): the
capture is process-wide, and a native crash must not take the gate with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from compressgate.native import captured

PACKAGE = "tflite-micro"
# Arena for the load: TFLM's own default is 10x the model size, too small for models
# whose activations outweigh their weights; the figure recorded is what was used.
ARENA_FLOOR = 4 << 20
ARENA_PER_MODEL_BYTE = 16

# C-stderr lines that say why a model does not load, most specific first.
_REASONS = (
    (re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'"),
     "op {0} is not in TFLM's op resolver"),
    (re.compile(r"Failed to get registration from op code (\w+)"),
     "no TFLM kernel for op code {0}"),
    (re.compile(r"Hybrid models are not supported on TFLite Micro"),
     "hybrid (dynamic-range) models are not supported on TFLite Micro"),
    (re.compile(r"Failed to allocate memory|Failed to resize buffer|Arena size is too small"),
     "the tensor arena is too small"),
)
_NODE = re.compile(r"Node (\w+) \(number (\d+)\) failed to (prepare|invoke)")
_ARENA = re.compile(r"Arena allocation total (\d+) bytes")


class TflmUnavailable(Exception):
    """tflite-micro cannot be imported here (the message says what is missing)."""


def runtime():
    """``tflite_micro.runtime``, or ``TflmUnavailable`` naming what is missing."""
    try:
        from tflite_micro import runtime as tflm_runtime
    except Exception as exc:  # ImportError, or a broken native library
        raise TflmUnavailable(
            f"{PACKAGE} not importable ({type(exc).__name__}: {str(exc)[:120]}); "
            f"install it with: pip install 'compressgate[tflm]'") from None
    return tflm_runtime


def version() -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(PACKAGE)
    except PackageNotFoundError:
        return None


def captured_output():
    """Collect what native code writes to fd 1 and 2 in the block (yields a list that
    holds the text afterwards)."""
    return captured(1, 2)


def load_failure(log: str, exc: BaseException) -> str:
    """One line saying why TFLM refused a model: the op and reason from its log."""
    for pattern, template in _REASONS:
        found = pattern.search(log)
        if found:
            return template.format(*found.groups())
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for i, line in enumerate(lines):  # a kernel refused: its op, and the line before it
        node = _NODE.search(line)
        if node:
            op, number, stage = node.groups()
            why = lines[i - 1].rpartition("tensorflow/lite/micro/")[2] if i else "no reason given"
            return f"{op} (node {number}) failed to {stage}: {why[:160]}"
    detail = lines[-1] if lines else str(exc).strip()
    return f"TFLM cannot load the model: {detail[:200]}"


def arena_used(log: str) -> int | None:
    found = _ARENA.search(log)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class TflmRun:
    """What TFLM did with a model: refused it (``error``), or its arena and outputs."""

    error: str | None
    arena_bytes: int | None = None
    # Outputs on the given rows, dequantized, and in the output's integer quanta.
    outputs: np.ndarray | None = None
    output_scale: float | None = None


def run(tflite: bytes, x: np.ndarray, quantize, dequantize) -> TflmRun:
    """Load ``tflite`` on TFLM, run every row of ``x`` (one row per invoke: TFLM models
    have a static batch of 1) and read the arena it used.

    ``quantize(rows, detail)`` / ``dequantize(y, detail)`` take LiteRT-style details
    (``dtype``, ``quantization``), so inputs are fed exactly as LiteRT is fed.
    """
    tflm = runtime()
    arena = max(ARENA_FLOOR, ARENA_PER_MODEL_BYTE * len(tflite))
    failure: BaseException | None = None
    with captured_output() as log:
        try:
            interp = tflm.Interpreter.from_bytes(tflite, arena_size=arena)
        except (RuntimeError, ValueError) as exc:
            failure = exc
    if failure is not None:
        return TflmRun(load_failure(log[0], failure))
    inp, out = _detail(interp.get_input_details(0)), _detail(interp.get_output_details(0))
    rows = []
    with captured_output() as log:  # kernels may log; keep the parent's streams clean
        try:
            for row in x:
                interp.reset()  # every inference starts from zero state (LSTM variables)
                interp.set_input(quantize(row[None], inp).reshape(inp["shape"]), 0)
                interp.invoke()
                rows.append(dequantize(np.asarray(interp.get_output(0)), out).reshape(-1))
            interp.print_allocations()
        except (RuntimeError, ValueError) as exc:
            failure = exc
    if failure is not None:
        return TflmRun(load_failure(log[0], failure).replace(
            "TFLM cannot load the model", "TFLM cannot run the model"))
    scale = out["quantization"][0] if not np.issubdtype(out["dtype"], np.floating) else None
    return TflmRun(None, arena_used(log[0]), np.stack(rows), scale)


def _detail(detail: dict) -> dict:
    """TFLM's tensor details as LiteRT's: dtype, shape and (scale, zero point)."""
    q = detail.get("quantization_parameters") or {}
    scales, zeros = q.get("scales"), q.get("zero_points")
    scale = float(np.ravel(scales)[0]) if scales is not None and np.size(scales) else 0.0
    zero = int(np.ravel(zeros)[0]) if zeros is not None and np.size(zeros) else 0
    return {"dtype": np.dtype(detail["dtype"]), "shape": tuple(detail["shape"]),
            "quantization": (scale, zero)}
