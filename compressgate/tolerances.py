"""How far a figure may move against its baseline before the gate counts it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from compressgate.measure.stats import ALPHA


@dataclass(frozen=True)
class Tolerances:
    """How far a figure may move against its baseline before it counts."""

    # The project config validates this dataclass with pydantic: unknown names are errors.
    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}

    accuracy_pts: float = 0.5
    size_pct: float = 1.0
    gzip_pct: float = 1.0
    sparsity: float = 0.01
    latency_pct: float = 15.0
    alpha: float = ALPHA
    # Peak memory may grow by memory_pct of the baseline plus memory_kib: repeated
    # fresh-process runs of one model differ by up to ~100 KiB (64 KiB steps), up to 3 %
    # of the smallest fixtures.
    memory_pct: float = 5.0
    memory_kib: float = 128.0
    # Paired accuracy against the accepted file: a drop beyond accuracy_pts must also be
    # significant (exact McNemar test on the rows where the two files disagree).
    accuracy_alpha: float = 0.05
    # Outputs of the new file against the accepted one (same model, data and recipe):
    # top-1 agreement (fine-tunes on another machine class measured >= 0.985), and the
    # largest output difference as a fraction of the output range for recipes that do
    # not fine-tune (measured 0 across classes; 2.5 int8 quanta = 0.01).
    fidelity_agreement: float = 0.97
    fidelity_output: float = 0.01
    # TFLM's tensor arena may grow by this much: one tflite-micro version plans the same
    # file to the same byte (measured: bisecting arena_size agreed within 2 bytes).
    arena_pct: float = 1.0

    def memory_allowed(self, base: float) -> float:
        """Bytes by which peak memory may exceed a baseline of ``base`` bytes."""
        return base * self.memory_pct / 100 + self.memory_kib * 1024
