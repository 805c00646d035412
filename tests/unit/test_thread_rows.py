"""``latency_threads``: the rows of the latency check at more threads, and the output
comparison they rest on (no TensorFlow: made-up pairs and outputs)."""

import numpy as np

from compressgate.gate import threads
from compressgate.gate.records import Status
from compressgate.measure.stats import LatencyPairs
from compressgate.measure.threads import ThreadRun, compare_outputs

PAIRS = LatencyPairs(reference_ms=(1.0,) * 12, candidate_ms=(0.5,) * 11 + (0.6,))


def test_outputs_equal_at_every_thread_count_pass_and_the_ratio_is_shown():
    rows = threads.rows((ThreadRun(4, PAIRS, 300, 0, 0.0),))
    ratio, outputs = rows
    assert (ratio.metric, ratio.status, ratio.measured) == (
        "latency_ratio @4 threads", Status.INFO, 0.5)
    assert ratio.note.startswith("recipe/float at 4 threads, 95 % CI ")
    assert (outputs.metric, outputs.status, outputs.key) == (
        "outputs @4 threads", Status.PASS, "outputs_threads_4")
    assert outputs.note == "identical to 1 thread on all 300 test rows"


def test_outputs_that_depend_on_the_thread_count_fail_naming_how_many_rows():
    (_, outputs), = [threads.rows((ThreadRun(2, PAIRS, 300, 3, 0.0039),))]
    assert outputs.status == Status.FAIL and outputs.measured == 3
    assert outputs.note == "differ from 1 thread on 3 of 300 test rows (largest difference 0.0039)"


def test_each_thread_count_gets_its_own_rows():
    rows = threads.rows((ThreadRun(2, PAIRS, 10, 0, 0.0), ThreadRun(4, PAIRS, 10, 1, 1e-7)))
    assert [r.metric for r in rows] == ["latency_ratio @2 threads", "outputs @2 threads",
                                        "latency_ratio @4 threads", "outputs @4 threads"]
    assert [r.status for r in rows][1::2] == [Status.PASS, Status.FAIL]


def test_any_difference_in_a_row_counts_it():
    one = np.zeros((4, 3), np.float32)
    many = one.copy()
    assert compare_outputs(one, many) == (0, 0.0)
    many[1, 2], many[3, 0] = 1e-6, -0.25
    assert compare_outputs(one, many) == (2, 0.25)
