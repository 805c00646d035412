"""How interleaved latency samples are sized: on a fake clock, so exactly (no timing)."""

from __future__ import annotations

import numpy as np
import pytest

from compressgate.measure import litert


class Clock:
    """perf_counter that moves only when a fake invoke runs."""

    def __init__(self) -> None:
        self.now = 0.0
        self.invokes: dict[bytes, int] = {}

    def perf_counter(self) -> float:
        return self.now

    def invoker(self, seconds: float, name: bytes):
        def invoke() -> None:
            self.now += seconds
            self.invokes[name] = self.invokes.get(name, 0) + 1
        return invoke


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    cost = {b"fast": 1.5e-4, b"slow": 3e-3}
    monkeypatch.setattr(litert.time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(litert, "ready_invoke",
                        lambda tflite, sample, num_threads=1: clock.invoker(cost[tflite], tflite))
    monkeypatch.setattr(litert, "other_runnable", lambda: None)
    return clock


def test_each_file_gets_its_own_sample_size(clock):
    times = litert.interleaved_times(b"fast", b"slow", np.zeros((1, 1)), pairs=12, blocks=2,
                                     min_sample_seconds=0.002)
    assert times["invokes_per_sample"] == 14  # 14 x 0.15 ms reach 2 ms
    assert times["candidate_invokes_per_sample"] == 1  # one 3 ms invoke already does
    assert np.allclose(times["candidate_ms"], 3.0) and np.allclose(times["reference_ms"], 0.15)
    # Per block, the fast file warms up with 10 invokes, the slow one with 2 (6 ms: longer
    # than a sample); then 3 invokes size each file's samples, once.
    assert clock.invokes[b"fast"] == 2 * 10 + 3 + 12 * 14
    # The slow file is invoked 12 times in the pairs, not 12 x 14 as the fast one needs.
    assert clock.invokes[b"slow"] == 2 * 2 + 3 + 12


def test_fast_candidate_is_sized_on_its_own_time(clock):
    times = litert.interleaved_times(b"slow", b"fast", np.zeros((1, 1)), pairs=6, blocks=1)
    assert (times["invokes_per_sample"], times["candidate_invokes_per_sample"]) == (1, 14)


@pytest.mark.parametrize("repeat", [1.3, 1.15, 2.5])
def test_planted_repeat_survives_rounding_on_a_slow_file(clock, repeat):
    # A one-invoke sample would round 1.3 invokes to 1 and hide the planted slowdown.
    times = litert.interleaved_times(b"fast", b"slow", np.zeros((1, 1)), pairs=6, blocks=1,
                                     candidate_repeat=repeat)
    ratio = np.median(np.asarray(times["candidate_ms"]) / np.asarray(times["reference_ms"]))
    assert ratio == pytest.approx(20 * repeat, rel=0.01)


@pytest.mark.parametrize(("seconds", "minimum", "repeat", "n"), [
    (1e-4, 0.002, 1, 20), (3e-3, 0.002, 1, 1), (2e-3, 0.002, 1, 1), (0.0, 0.002, 1, 20000),
    (3e-3, 0.002, 1.3, 39), (1e-5, 0.002, 1.3, 200), (3e-3, 0.002, 0.5, 100)])
def test_sample_size(seconds, minimum, repeat, n):
    assert litert.sample_size(seconds, minimum, repeat) == n
