"""Latency statistics on hand-made interleaved pairs (no TensorFlow, no timing)."""

import numpy as np
import pytest

from compressgate.measure.stats import LatencyPairs, ratio_below, ratio_exceeds


def pairs(ratio: float, n: int = 41, noise: float = 0.01, seed: int = 0) -> LatencyPairs:
    rng = np.random.default_rng(seed)
    ref = 1.0 + rng.uniform(0, 0.3, n)  # machine load moves both alike
    cand = ref * ratio * np.exp(rng.normal(0, noise, n))
    return LatencyPairs(tuple(ref), tuple(cand))


def test_ratio_is_median_of_pairwise_ratios():
    p = LatencyPairs((1.0, 2.0, 4.0), (0.5, 1.0, 4.0))
    assert p.ratio == pytest.approx(0.5)


def test_interval_brackets_the_ratio():
    p = pairs(0.6)
    low, high = p.ratio_interval()
    assert low <= p.ratio <= high
    assert high / low < 1.05


def test_a_real_slowdown_is_significant():
    slower = pairs(1.4)
    significant, p = ratio_exceeds(slower, 1.0 * 1.15)
    assert significant and p < 1e-6


def test_noise_within_tolerance_is_not_significant():
    same = pairs(1.05, noise=0.05)
    significant, _ = ratio_exceeds(same, 1.0 * 1.15)
    assert not significant


def test_faster_than_float_needs_evidence():
    assert ratio_below(pairs(0.5), 1.0)[0]
    assert not ratio_below(pairs(1.0, noise=0.05), 1.0)[0]


def test_pairs_must_match():
    with pytest.raises(ValueError):
        LatencyPairs((1.0,), (1.0, 2.0))


def test_sqnr_db():
    from compressgate.measure.stats import sqnr_db

    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert sqnr_db(ref, ref) is None
    assert sqnr_db(ref, ref * 0.9) == pytest.approx(20.0)  # noise = 1 % of the signal
    assert sqnr_db(ref, ref + 1.0) < 0
