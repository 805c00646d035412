"""Where a ``.tflite`` runs besides LiteRT with XNNPACK, and whether it computes the same.

- Kernel parity: LiteRT with XNNPACK (what devices run, and what every other figure
  here is measured with) against LiteRT's reference kernels (what many teams validate
  with): top-1 agreement and the largest output difference in output quanta. XNNPACK
  rounds int8 differently (measured: up to 22 quanta, 99.75 % agreement on digits).
- TFLM (``compressgate.measure.tflm``): does the file load, how much tensor arena it
  uses (bytes, the same on any machine for one tflite-micro version), its accuracy, and
  its outputs against the reference kernels, which TFLM's kernels are ported from.

Measured in a fresh child process per file: TFLM's reasons and arena reach us only on
C-level stderr, which is captured process-wide, and a crash in native code fails this
measurement only. Never cached: it takes well under a second on the fixtures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.measure import litert, tflm

TIMEOUT = 600.0
# Rows of the test split measured (the first ones): a TFLM invoke of a digits CNN costs
# ~11 ms and LiteRT's reference kernels ~4 ms (loaded VNNI-class machine), so the whole
# 400-row split took 7-38 s per file on the fixtures.
ROWS = 100
# Bump when the figures change meaning (cache keys).
FORMAT = 2
ARENA_FIGURE = "tflm_arena_bytes"
# Row fields this module fills (None where not measured).
FIELDS = ("kernel_agreement", "kernel_max_quanta", "kernel_max_diff", "tflm_loads",
          "tflm_error", ARENA_FIGURE, "tflm_accuracy", "tflm_ref_agreement",
          "tflm_max_quanta", "tflm_max_diff", "tflm_version", "litert_rows_accuracy")


def reference_interpreter(tflite: bytes, num_threads: int = 1, *, name: str = "model"):
    """A LiteRT interpreter on its reference kernels (no XNNPACK, no optimized kernels)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=tflite, num_threads=num_threads,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def _output_scale(tflite: bytes) -> float | None:
    """The output's quantization step (None for a float output)."""
    detail = litert.interpreter(tflite).get_output_details()[0]
    if np.issubdtype(detail["dtype"], np.floating):
        return None
    return float(detail["quantization"][0]) or None


def _difference(a: np.ndarray, b: np.ndarray, scale: float | None) -> dict[str, Any]:
    """Top-1 agreement and the largest difference: in quanta (integer outputs) and as a
    fraction of ``b``'s range."""
    spread = float(np.max(b) - np.min(b)) or 1.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return {"agreement": float(np.mean(np.argmax(a, -1) == np.argmax(b, -1))),
            "max_quanta": round(diff / scale) if scale else None,
            "max_diff": round(diff / spread, 6)}


def measure_here(tflite: bytes, x: np.ndarray, y: np.ndarray | None,
                 batch: int | None = None, *, tflm_rows: bool = True) -> dict[str, Any]:
    """Every figure of ``FIELDS`` for one file, in this process (see ``measure``)."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    xnn = litert.predict(tflite, x, batch=batch).reshape(len(x), -1)
    ref = litert.predict(tflite, x, batch=batch,
                         make_interpreter=reference_interpreter).reshape(len(x), -1)
    scale = _output_scale(tflite)
    parity = _difference(xnn, ref, scale)
    if y is not None:  # LiteRT's accuracy on the same rows, next to TFLM's
        out["litert_rows_accuracy"] = float(np.mean(np.argmax(xnn, -1) == y))
    out.update({"kernel_agreement": parity["agreement"],
                "kernel_max_quanta": parity["max_quanta"], "kernel_max_diff": parity["max_diff"]})
    try:
        run = tflm.run(tflite, x if tflm_rows else x[:1], litert.quantize, litert.dequantize)
    except tflm.TflmUnavailable as exc:
        out["tflm_error"] = f"not run: {exc}"
        return out
    out["tflm_version"] = tflm.version()
    out["tflm_loads"] = run.error is None
    if run.error is not None:
        out["tflm_error"] = run.error
        return out
    out[ARENA_FIGURE] = run.arena_bytes
    if not tflm_rows:
        return out
    assert run.outputs is not None
    on_tflm = _difference(run.outputs, ref, scale)
    out.update({"tflm_ref_agreement": on_tflm["agreement"],
                "tflm_max_quanta": on_tflm["max_quanta"], "tflm_max_diff": on_tflm["max_diff"]})
    if y is not None:
        out["tflm_accuracy"] = float(np.mean(np.argmax(run.outputs, -1) == y))
    return out


def measure(tflite: bytes, x: np.ndarray, y: np.ndarray | None, *, batch: int | None = None,
            tflm_rows: bool = True, timeout: float = TIMEOUT) -> dict[str, Any]:
    """``FIELDS`` for ``tflite`` on the rows ``x`` (labels ``y``, None for a model
    scored by another metric), measured in a fresh child process; on failure every
    figure is None and ``targets_error`` says why in one line.

    ``tflm_rows=False``: TFLM loads the file and runs one row (does it run there, and
    its arena), for recipes that do not promise TFLM: a TFLM invoke costs ~10 ms on a
    digits CNN, 4.5 s for its 400 test rows."""
    with tempfile.TemporaryDirectory(prefix="compressgate-targets-") as scratch:
        (Path(scratch) / "model.tflite").write_bytes(tflite)
        arrays = {"x": x} if y is None else {"x": x, "y": np.asarray(y)}
        np.savez(Path(scratch) / "data.npz", **arrays)
        args = [sys.executable, "-m", "compressgate.measure.targets", scratch, str(batch or 0),
                "rows" if tflm_rows else "one"]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            return _failed(f"target measurement timed out after {timeout:g} s")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return _failed(f"target measurement failed: {tail[:200]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _failed(why: str) -> dict[str, Any]:
    return {**dict.fromkeys(FIELDS), "targets_error": why}


def _main(scratch: str, batch: str, rows: str) -> None:
    data = np.load(Path(scratch) / "data.npz")
    y = data["y"] if "y" in data.files else None
    figures = measure_here((Path(scratch) / "model.tflite").read_bytes(), data["x"], y,
                           int(batch) or None, tflm_rows=rows == "rows")
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
