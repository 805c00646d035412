"""Worker processes that crash or hang fail their own task only (no TensorFlow)."""

import pytest

from compressgate import isolation
from compressgate.backends.faults import trigger
from compressgate.errors import UserInputError


def test_crash_abort_and_hang_fail_alone_and_the_healthy_tasks_finish(monkeypatch):
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "3")
    with isolation.Workers(2) as workers:
        futures = [workers.submit(trigger, "segfault"), workers.submit(abs, -1),
                   workers.submit(trigger, "abort"), workers.submit(trigger, "hang"),
                   workers.submit(abs, -2)]
        outcomes = [workers.outcome(f) for f in futures]
    assert outcomes == [(None, "worker crashed: signal SIGSEGV"), (1, None),
                        (None, "worker crashed: signal SIGABRT"),
                        (None, "timed out after 3 s"), (2, None)]


def test_an_error_raised_by_the_task_reaches_the_caller():
    with isolation.Workers(1) as workers, pytest.raises(ValueError, match="unknown fault"):
        workers.run(trigger, "melt")


@pytest.mark.parametrize("text", ["soon", "0", "-5", "nan"])
def test_bad_timeout_setting_is_one_line_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(isolation.TIMEOUT_ENV, text)
    with pytest.raises(UserInputError) as info:
        isolation.conversion_timeout()
    assert str(info.value) == (f"$COMPRESSGATE_CONVERSION_TIMEOUT: expected a number of "
                               f"seconds > 0, got {text!r}")


def test_timeout_default_and_override(monkeypatch):
    monkeypatch.delenv(isolation.TIMEOUT_ENV, raising=False)
    assert isolation.conversion_timeout() == 1800
    monkeypatch.setenv(isolation.TIMEOUT_ENV, "90.5")
    assert isolation.conversion_timeout() == 90.5
