"""TEST KNOBS: a backend that crashes, aborts or hangs on chosen recipes, and a
per-process latency mode.

It proves that a run survives a conversion that kills or wedges its process (a segfault
in a kernel, a converter that never returns) without needing a real native bug. The gate
never uses it; tests pass ``functools.partial(FaultyBackend, {"recipe": "segfault"})`` as
a ``Runner``'s ``backend_factory``. Every other recipe goes to the TensorFlow backend,
or, with ``canned``, returns that ``.tflite`` file as is (no TensorFlow: fast tests).

``process_slowdown`` emulates a model whose latency ratio falls into one of two modes
per process (measured on seq_rnn's int8 LSTM on an Intel avx512_fp16 class: 6.6-7.3
or 9.3-9.6, chosen per process), so the gate's cross-process latency rule can be tested
on any machine. It stays importable without TensorFlow or scipy: measuring children use it.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# "segfault_onednn": a segfault only while TensorFlow's oneDNN optimizations are on (as
# the AVX-512 kernels' crashes in fine-tunes were); with TF_ENABLE_ONEDNN_OPTS=0 the
# recipe runs.
Fault = Literal["segfault", "abort", "hang", "segfault_onednn"]


def trigger(fault: Fault) -> None:
    """Make this process die (or stop answering) the way a broken native kernel does."""
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "abort":  # as glibc does on heap corruption: a line on fd 2, then abort
        os.write(2, b"munmap_chunk(): invalid pointer\n")
        os.abort()
    elif fault == "hang":
        while True:
            time.sleep(60)
    raise ValueError(f"unknown fault {fault!r}")


@dataclass(frozen=True)
class FaultyBackend:
    """The TensorFlow backend, except that ``faults[recipe name]`` fires instead."""

    faults: dict[str, Fault] = field(default_factory=dict)
    canned: Path | None = None

    def compress(self, spec: Any, recipe: Any, data: Any) -> Any:
        fault = self.faults.get(recipe.name)
        if fault == "segfault_onednn":
            if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() != "0":
                trigger("segfault")
        elif fault is not None:
            trigger(fault)
        if self.canned is not None:
            from compressgate.backends.protocol import Artifact

            return Artifact(self.canned.read_bytes())
        from compressgate.backends import tf

        return tf.compress(spec, recipe, data)

    def versions(self) -> dict[str, str]:
        from compressgate.backends import tf

        return tf.versions()
