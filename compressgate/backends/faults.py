"""TEST KNOB: a backend that crashes, aborts or hangs on chosen recipes.

It proves that a run survives a conversion that kills or wedges its process (a segfault
in a kernel, a converter that never returns) without needing a real native bug. The gate
never uses it; tests pass ``functools.partial(FaultyBackend, {"recipe": "segfault"})`` as
a ``Runner``'s ``backend_factory``. Every other recipe goes to the TensorFlow backend,
or, with ``canned``, returns that ``.tflite`` file as is (no TensorFlow: fast tests).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compressgate.backends.protocol import Artifact

Fault = Literal["segfault", "abort", "hang"]


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
        if fault is not None:
            trigger(fault)
        if self.canned is not None:
            return Artifact(self.canned.read_bytes())
        from compressgate.backends import tf

        return tf.compress(spec, recipe, data)

    def versions(self) -> dict[str, str]:
        from compressgate.backends import tf

        return tf.versions()
