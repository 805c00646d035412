"""The tflite_sha256 row of the baseline check: pure rule and the session's update flow."""

from compressgate.gate.baselines import ARTIFACT_FIGURE as METRIC
from compressgate.pipeline.record import ResultRow
from compressgate.workflows.reproducibility import check_row

ENV = {"tensorflow": "2.21.0", "python": "3.11.7", "cpu": "AMD EPYC"}
SHA = "a" * 64
HINT = "pytest --compressgate-update=missing"


def row(sha=SHA, cached=False):
    return ResultRow("m", "r", True, cached=cached, tflite_sha256=sha)


def test_identical_bytes_pass_and_say_whether_this_run_converted():
    fresh = check_row(row(), {METRIC: SHA}, ENV, ENV, HINT)
    assert (fresh.status, fresh.note) == ("pass", "converted in this run")
    cached = check_row(row(cached=True), {METRIC: SHA}, ENV, ENV, HINT)
    assert (cached.status, cached.note) == ("pass",
                                            "from the result cache, not converted in this run")


def test_different_bytes_under_the_same_versions_are_a_regression():
    verdict = check_row(row("b" * 64), {METRIC: SHA}, ENV, ENV, HINT)
    assert verdict.status == "regression"
    assert (verdict.measured, verdict.expected) == ("b" * 12, "a" * 12)


def test_other_versions_or_cpu_skip_the_comparison_and_name_what_moved():
    then = ENV | {"tensorflow": "2.20.0", "cpu": "Intel Xeon"}
    verdict = check_row(row("b" * 64), {METRIC: SHA}, ENV, then, HINT)
    assert verdict.status == "info"
    assert verdict.note == ("bytes are compared on the recording build only; here cpu Intel "
                            "Xeon (now AMD EPYC); tensorflow 2.20.0 (now 2.21.0)")


def test_an_old_baseline_without_the_sha_fails_clearly():
    verdict = check_row(row(), {}, ENV, ENV, HINT)
    assert verdict.status == "regression"
    assert verdict.note == f"no baseline for {METRIC}; create it with: {HINT}"
