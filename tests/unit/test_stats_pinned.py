"""The statistics behind the latency and paired-accuracy verdicts
(``compressgate.measure.stats``): the interval of the median ratio, the exact sign tests,
McNemar and the SQNR, pinned on
hand-made samples. Written against the mutants that ``tox -e mutation`` found surviving
the other unit tests (see README "Testing")."""

import numpy as np
import pytest

from compressgate.measure.stats import (
    LatencyPairs,
    PairedOutcome,
    paired_outcome,
    ratio_below,
    ratio_exceeds,
    sqnr_db,
)


def pairs(*ratios):
    """Pairs whose per-pair ratios candidate/reference are ``ratios`` (reference 2 ms)."""
    return LatencyPairs((2.0,) * len(ratios), tuple(2.0 * r for r in ratios))


def test_unequal_or_empty_samples_are_refused_with_a_reason():
    message = "^latency pairs need equally many, and some, samples$"
    with pytest.raises(ValueError, match=message):
        LatencyPairs((1.0, 1.0), (1.0,))
    with pytest.raises(ValueError, match=message):
        LatencyPairs((), ())


def test_fewer_than_six_pairs_give_their_whole_range():
    low, high = pairs(1.3, 1.1, 1.5, 1.2, 1.4).ratio_interval()
    assert (low, high) == (pytest.approx(1.1), pytest.approx(1.5))


def test_median_interval_uses_the_binomial_order_statistics():
    """The distribution-free interval of the median: for 20 pairs at 95 % the 6th and 15th
    smallest ratios (the sign-test table); for 6 pairs the extremes at 95 % but the 2nd and
    5th at 50 %; at 99 % even 6 and 7 pairs keep their extremes."""
    twenty = pairs(*(1 + i / 100 for i in range(1, 21)))
    assert twenty.ratio_interval() == (pytest.approx(1.06), pytest.approx(1.15))
    six = pairs(1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
    assert six.ratio_interval() == (pytest.approx(1.1), pytest.approx(1.6))
    assert six.ratio_interval(0.5) == (pytest.approx(1.2), pytest.approx(1.5))
    assert six.ratio_interval(0.99) == (pytest.approx(1.1), pytest.approx(1.6))
    seven = pairs(1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7)
    assert seven.ratio_interval(0.99) == (pytest.approx(1.1), pytest.approx(1.7))


def test_to_dict_names_the_figures_a_baseline_records():
    p = LatencyPairs((1.0, 2.0, 3.0), (0.5, 1.0, 1.5))
    assert p.to_dict() == {
        "latency_ratio": pytest.approx(0.5), "latency_ratio_low": pytest.approx(0.5),
        "latency_ratio_high": pytest.approx(0.5), "latency_ms": 1.0,
        "float_latency_ms": 2.0, "latency_pairs": 3, "others_running": None}
    busy = LatencyPairs((1.0,), (1.0,), others_running=0.5)
    assert busy.to_dict()["others_running"] == 0.5 and busy.busy
    assert not LatencyPairs((1.0,), (1.0,), others_running=0.49).busy


@pytest.mark.parametrize("n", [1, 6, 20])
def test_identical_timings_are_never_significant(n):
    same = pairs(*([1.0] * n))
    assert ratio_exceeds(same, 1.0) == (False, 1.0)
    assert ratio_below(same, 1.0) == (False, 1.0)


def test_pairs_tied_with_the_limit_are_left_out_of_the_sign_test():
    """Five of twenty pairs exactly at the limit say nothing about either side: the sign
    test counts the fifteen others, all above (p = 0.5 ** 15), and none below."""
    tied = pairs(*([1.0] * 5 + [1 + (i + 1) / 100 for i in range(15)]))
    assert ratio_exceeds(tied, 1.0) == (True, pytest.approx(0.5 ** 15))
    assert ratio_below(tied, 1.0) == (False, pytest.approx(1.0))


def test_the_sign_test_counts_pairs_not_their_distances():
    """Nine pairs 1 % above the limit and one 50 % below: p = P(X >= 9 | 10, 1/2) = 11/1024
    either way the odd pair lies; ``ratio_below`` counts the pairs below the limit."""
    slower = [1.01] * 9
    for odd in (0.5, 0.99):
        significant, p = ratio_exceeds(pairs(*slower, odd), 1.0, alpha=0.02)
        assert significant and p == pytest.approx(11 / 1024)
        assert ratio_exceeds(pairs(*slower, odd), 1.0, alpha=11 / 1024) == \
            (False, pytest.approx(11 / 1024))
    faster = pairs(*([0.9] * 9 + [1.5]))
    assert ratio_below(faster, 1.0, alpha=0.02) == (True, pytest.approx(11 / 1024))
    assert ratio_exceeds(faster, 1.0) == (False, pytest.approx(1023 / 1024))
    # The limit moves the comparison: against 0.8, all ten pairs lie above.
    assert ratio_exceeds(faster, 0.8) == (True, pytest.approx(0.5 ** 10))


def test_as_many_pairs_above_as_below_is_no_evidence_either_way():
    """Three above and three below: p = P(X >= 3 | 6, 1/2) = 42/64 for either side."""
    even = pairs(1.1, 1.2, 1.3, 0.7, 0.8, 0.9)
    assert ratio_exceeds(even, 1.0) == (False, pytest.approx(42 / 64))
    assert ratio_below(even, 1.0) == (False, pytest.approx(42 / 64))


def test_sqnr_of_integer_outputs_is_computed_in_floats():
    # int8 squares overflow: 100**2 does not fit.
    reference = np.array([100, -100, 50], dtype=np.int8)
    candidate = np.array([90, -90, 50], dtype=np.int8)
    assert sqnr_db(reference, candidate) == pytest.approx(10 * np.log10(22500 / 200))
    assert sqnr_db([3.0, 4.0], [3.0, 3.0]) == pytest.approx(10 * np.log10(25))
    assert sqnr_db([1.0, 2.0], [1.0, 2.0]) is None


def test_mcnemar_without_discordant_rows_is_no_evidence():
    assert PairedOutcome(400, 0, 0).p_worse() == 1.0
    assert PairedOutcome(400, 0, 0).p_better() == 1.0


def test_paired_outcome_counts_rows_only_one_model_got_right():
    labels = [0, 1, 2, 3, 4, 5]
    accepted = [0, 1, 2, 9, 9, 5]   # right on 0, 1, 2, 5
    new = [0, 9, 9, 3, 9, 5]        # right on 0, 3, 5
    assert paired_outcome(labels, accepted, new) == PairedOutcome(6, 2, 1)
    assert paired_outcome(np.array(labels), new, accepted) == PairedOutcome(6, 1, 2)
