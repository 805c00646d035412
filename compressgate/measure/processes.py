"""Latency pairs timed in fresh processes, one after another.

A latency ratio can fall into one of several modes per process (measured: seq_rnn's
int8 LSTM on an Intel avx512_fp16 class gave 6.6-7.3 or 9.3-9.6 from one process to the
next, each with a tight interval), so one process cannot describe a machine class. Each
child here loads the two files, times the same interleaved pairs as the gate's own
process (``litert.interleaved_times``) and prints them; the children run one at a time,
so no child competes with another for the cores it is timed on. A child imports numpy
and LiteRT only (no TensorFlow, no scipy): its start-up is a fraction of a second.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from compressgate.measure.stats import LatencyPairs

TIMEOUT = 300.0


class ProcessError(RuntimeError):
    """A measuring child failed or timed out (the line says which and why)."""


def fresh_latency(reference: bytes, candidate: bytes, sample: np.ndarray, *, processes: int,
                  pairs: int = 42, candidate_repeat: float = 1,
                  process_slowdown: float | None = None,
                  timeout: float = TIMEOUT) -> tuple[LatencyPairs, ...]:
    """``processes`` measurements of ``candidate`` against ``reference``, each in its own
    fresh process, sequentially. ``process_slowdown`` is the test knob of
    ``process_slowdown`` below (each child draws its own mode)."""
    from compressgate.measure.stats import LatencyPairs

    return tuple(LatencyPairs(**doc) for doc in fresh_times(
        reference, candidate, sample, processes=processes, pairs=pairs,
        candidate_repeat=candidate_repeat, process_slowdown=process_slowdown,
        timeout=timeout))


def fresh_times(reference: bytes, candidate: bytes, sample: np.ndarray, *, processes: int,
                pairs: int = 42, candidate_repeat: float = 1,
                process_slowdown: float | None = None,
                timeout: float = TIMEOUT) -> tuple[dict, ...]:
    """``fresh_latency`` as plain data (the fields of ``LatencyPairs``): what a board
    measures, where scipy (``stats``) need not be installed."""
    if processes <= 0:
        return ()
    with tempfile.TemporaryDirectory(prefix="compressgate-latency-") as scratch:
        where = Path(scratch)
        (where / "reference.tflite").write_bytes(reference)
        (where / "candidate.tflite").write_bytes(candidate)
        np.save(where / "sample.npy", np.asarray(sample, dtype=np.float32))
        (where / "settings.json").write_text(json.dumps({
            "pairs": pairs, "candidate_repeat": candidate_repeat,
            "process_slowdown": process_slowdown}))
        return tuple(_child(where, timeout) for _ in range(processes))


def _child(where: Path, timeout: float) -> dict:
    try:
        proc = subprocess.run([sys.executable, "-m", "compressgate.measure.processes",
                               str(where)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProcessError(f"latency process timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ProcessError(f"latency process failed: {tail[:200]}")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**doc, "reference_ms": tuple(doc["reference_ms"]),
            "candidate_ms": tuple(doc["candidate_ms"])}


def _measure_here(where: Path) -> dict:
    """In the child: the interleaved pairs, as plain data."""
    from compressgate.measure.litert import interleaved_times

    settings = json.loads((where / "settings.json").read_text())
    repeat = settings["candidate_repeat"] * process_slowdown(settings["process_slowdown"])
    return interleaved_times((where / "reference.tflite").read_bytes(),
                             (where / "candidate.tflite").read_bytes(),
                             np.load(where / "sample.npy"), pairs=settings["pairs"],
                             candidate_repeat=repeat)


# Drawn once per process: the mode a process is in, as ASLR or placement would pick it.
_PROCESS_DRAW = random.Random(f"{os.getpid()}-{time.time_ns()}").random()


def process_slowdown(factor: float | None) -> float:
    """TEST KNOB (recipe field ``process_slowdown``): ``factor`` in about half of all
    processes, 1 in the others; the same answer for the whole life of one process."""
    if not factor or factor == 1:
        return 1.0
    return float(factor) if _PROCESS_DRAW < 0.5 else 1.0


if __name__ == "__main__":
    print(json.dumps(_measure_here(Path(sys.argv[1]))), flush=True)
