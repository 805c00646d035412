"""Latency statistics on interleaved pairs: ratio, its interval, and significance tests;
paired accuracy (McNemar) and the side-by-side record of the accepted file against a new one.

Absolute times move with machine load; the per-pair ratio candidate/reference, measured
back to back, barely does. Every latency verdict is therefore about ratios from one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from compressgate.measure.coverage import DelegateCoverage

ALPHA = 0.01
# Mean other runnable tasks from which a latency measurement counts as taken on a busy
# machine (one other busy process on average for half of the pairs).
BUSY = 0.5


@dataclass(frozen=True)
class LatencyPairs:
    """Interleaved per-inference times in milliseconds: ``reference[i]`` and
    ``candidate[i]`` were measured back to back."""

    reference_ms: tuple[float, ...]
    candidate_ms: tuple[float, ...]
    invokes_per_sample: int = 1  # of the reference; the candidate's below
    candidate_invokes_per_sample: int = 1
    # Other runnable tasks on the machine, averaged over the pairs (None: not known).
    # Cache- and memory-bound kernels slow down under contention more than the float
    # reference does, so a busy machine moves the ratio itself (measured on the VNNI
    # class with two other jobs running: digits_cnn int16x8 39.6 -> 55.6, tight interval).
    others_running: float | None = None

    @property
    def busy(self) -> bool:
        """Was another task competing for the machine for much of the measurement?"""
        return self.others_running is not None and self.others_running >= BUSY

    def __post_init__(self) -> None:
        if len(self.reference_ms) != len(self.candidate_ms) or not self.reference_ms:
            raise ValueError("latency pairs need equally many, and some, samples")

    @property
    def log_ratios(self) -> np.ndarray:
        return np.log(np.asarray(self.candidate_ms) / np.asarray(self.reference_ms))

    @property
    def ratio(self) -> float:
        """Median of the per-pair ratios candidate/reference (< 1: candidate faster)."""
        return float(np.exp(np.median(self.log_ratios)))

    def ratio_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Distribution-free interval for the median ratio (binomial order statistics)."""
        values = np.sort(self.log_ratios)
        n = len(values)
        if n < 6:
            return float(np.exp(values[0])), float(np.exp(values[-1]))
        k = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
        return float(np.exp(values[max(0, k - 1)])), float(np.exp(values[min(n - 1, n - k)]))

    @property
    def reference_median_ms(self) -> float:
        return float(np.median(self.reference_ms))

    @property
    def candidate_median_ms(self) -> float:
        return float(np.median(self.candidate_ms))

    def to_dict(self) -> dict:
        low, high = self.ratio_interval()
        return {
            "latency_ratio": self.ratio,
            "latency_ratio_low": low,
            "latency_ratio_high": high,
            "latency_ms": self.candidate_median_ms,
            "float_latency_ms": self.reference_median_ms,
            "latency_pairs": len(self.reference_ms),
            "others_running": self.others_running,
        }


def ratio_exceeds(pairs: LatencyPairs, limit: float, alpha: float = ALPHA) -> tuple[bool, float]:
    """Is the median per-pair ratio significantly above ``limit``? (one-sided exact sign
    test on log(ratio) - log(limit)); returns (significant, p-value)."""
    return _sign_test(pairs.log_ratios - math.log(limit), "greater", alpha)


def ratio_below(pairs: LatencyPairs, limit: float, alpha: float = ALPHA) -> tuple[bool, float]:
    """Is the median per-pair ratio significantly below ``limit``?"""
    return _sign_test(pairs.log_ratios - math.log(limit), "less", alpha)


def _sign_test(diffs: np.ndarray, alternative: str, alpha: float) -> tuple[bool, float]:
    """The exact sign test: the test that belongs to the median ratio and its
    order-statistic interval. Unlike a signed-rank test it counts pairs, not their
    distances: one interpreter instance whose ratio is off by 25 % (measured on the
    VNNI class) weighs as many pairs as it has, not as the largest ranks."""
    above, below = int(np.sum(diffs > 0)), int(np.sum(diffs < 0))
    if above + below == 0:
        return False, 1.0
    hits = above if alternative == "greater" else below
    p = float(stats.binomtest(hits, above + below, 0.5, alternative="greater").pvalue)
    return p < alpha, p


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Signal-to-quantization-noise ratio of ``candidate`` against ``reference`` in dB;
    ``None`` when they are identical (no noise to measure)."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((reference - np.asarray(candidate, dtype=np.float64)) ** 2))
    if noise == 0.0:
        return None
    return float(10 * np.log10(np.sum(reference**2) / noise))


@dataclass(frozen=True)
class PairedOutcome:
    """Two models' top-1 hits on the same test rows: the rows only the accepted model
    got right (``lost``) and only the new one got right (``gained``)."""

    rows: int
    lost: int
    gained: int

    @property
    def net_lost(self) -> int:
        return self.lost - self.gained

    def p_worse(self) -> float:
        """Exact one-sided McNemar test: how likely ``lost`` of the ``lost + gained``
        discordant rows would fall against the new model if both were equally good."""
        discordant = self.lost + self.gained
        if discordant == 0:
            return 1.0
        return float(stats.binomtest(self.lost, discordant, 0.5, alternative="greater").pvalue)

    def p_better(self) -> float:
        return PairedOutcome(self.rows, self.gained, self.lost).p_worse()


def paired_outcome(labels, accepted_top1, new_top1) -> PairedOutcome:
    labels = np.asarray(labels)
    accepted_hit = np.asarray(accepted_top1) == labels
    new_hit = np.asarray(new_top1) == labels
    return PairedOutcome(len(labels), int(np.sum(accepted_hit & ~new_hit)),
                         int(np.sum(new_hit & ~accepted_hit)))


def rows_within(points: float, rows: int) -> int:
    """How many of ``rows`` test rows ``points`` percentage points are, rounded down
    (with an epsilon, so 0.5 points of 400 rows is exactly 2 rows)."""
    return math.floor(points / 100 * rows + 1e-9)


@dataclass(frozen=True)
class SideBySide:
    """The accepted ``.tflite`` measured in this run next to the new one."""

    identical: bool
    # Accuracy models: hits of both on the same test rows, and the accepted accuracy.
    paired: PairedOutcome | None = None
    accepted_accuracy: float | None = None
    # Top-1 agreement and the largest output difference (as a fraction of the accepted
    # outputs' range) on the test split.
    agreement: float | None = None
    max_output_diff: float | None = None
    # Custom metrics: the accepted file's score on this run's test split.
    accepted_score: float | None = None
    # Peak memory of the accepted file, measured like the new one (None: not measured).
    accepted_memory: int | None = None
    # Which ops XNNPACK takes in the accepted file, on this machine (None: not measured).
    accepted_coverage: DelegateCoverage | None = None
