"""Peak memory of running a ``.tflite`` model: load, allocate tensors, one invoke.

Measured in a fresh Python process per model file, so one measurement cannot inherit
another's heap (freed memory often stays with the allocator and would hide a later peak).
The child runs the model once to pay the runtime's one-time costs, releases it, resets
the kernel's peak-RSS counter (``/proc/self/clear_refs``), reads its resident size, runs
the model again and reports ``VmHWM - VmRSS before``: the resident bytes the model adds at
its peak (weights, arena, kernel scratch, XNNPACK's packed weights). Never cached: like
latency, it is a fact about this machine and allocator, and costs a fraction of a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

METRIC = "peak_memory_bytes"
TIMEOUT = 300.0


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _run_once(path: str):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interp.reset_all_variables()
    interp.invoke()
    return interp


def _measure_here(path: str) -> dict[str, int | bool]:
    """In the child: resident bytes added at the peak of load + allocate + invoke.

    The first run pays one-time costs of the runtime itself (shared libraries paged in,
    XNNPACK initialised): measured 2.0 MB in one environment and 3.5 MB in another with
    the same package versions, so it is excluded. The model is run once, released (and
    the heap trimmed), then measured on its second run, which agreed across environments
    within 12 KiB.
    """
    import contextlib
    import ctypes
    import gc

    warm = _run_once(path)
    del warm
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back: no hidden reuse
    try:  # Linux >= 4.0: reset VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS") if reset else _status_kib("VmHWM")
    interp = _run_once(path)
    peak = (_status_kib("VmHWM") - before) * 1024
    del interp
    return {METRIC: peak, "hwm_reset": reset}


def peak_memory(tflite: bytes, *, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
    """(peak bytes, None), or (None, why it could not be measured) in one line."""
    with tempfile.TemporaryDirectory(prefix="compressgate-memory-") as scratch:
        path = Path(scratch) / "model.tflite"
        path.write_bytes(tflite)
        try:
            proc = subprocess.run([sys.executable, "-m", "compressgate.measure.memory", str(path)],
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, f"memory measurement timed out after {timeout:g} s"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return None, f"memory measurement failed: {tail[:200]}"
    return int(json.loads(proc.stdout.strip().splitlines()[-1])[METRIC]), None


if __name__ == "__main__":
    print(json.dumps(_measure_here(sys.argv[1])), flush=True)
