"""Measuring on a board over SSH, against a real sshd on the loopback address
(``tests/sshboard.py``): what comes back, what a broken board says, what stays behind."""

import dataclasses
import fcntl
import os
from pathlib import Path

import numpy as np
import pytest
import sshboard

from compressgate.measure import board, litert, remote
from compressgate.measure.machine import machine_class, this_machine

MODEL = Path(__file__).resolve().parents[1] / "data" / "tabular_mlp_ptq_int8.tflite"

pytestmark = pytest.mark.skipif(sshboard.missing() is not None,
                                reason=f"no loopback board: {sshboard.missing()}")


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    with sshboard.loopback_board(tmp_path_factory.mktemp("board")) as started:
        yield started


@pytest.fixture(scope="module")
def tflite() -> bytes:
    return MODEL.read_bytes()


@pytest.fixture(scope="module")
def x(tflite) -> np.ndarray:
    shape = litert.interpreter(tflite).get_input_details()[0]["shape"]
    return np.random.default_rng(0).normal(size=(20, *shape[1:])).astype(np.float32)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_the_board_measures_outputs_memory_and_latency_and_keeps_nothing(loopback, tflite, x):
    measured = remote.measure(loopback.host, {"new": tflite, "float": tflite}, x,
                              outputs=("new",), memory=("new",),
                              latency=(("new", "float"),), pairs=12)
    # The same machine here: the board's fingerprint is this machine's, under its own name.
    assert measured.fingerprint["isa"] == this_machine()["isa"]
    assert measured.machine_class == f"{machine_class(this_machine())} (board loopback)"
    assert measured.versions["ai-edge-litert"] == litert_version()
    np.testing.assert_array_equal(measured.outputs["new"],
                                  litert.predict(tflite, x).reshape(len(x), -1))
    peak, why = measured.memory["new"]
    assert why is None and peak > 0
    pairs = measured.latency[("new", "float")]
    assert len(pairs["reference_ms"]) == len(pairs["candidate_ms"]) == 12
    assert min(pairs["candidate_ms"]) > 0
    assert list(loopback.tmp.iterdir()) == []


def test_an_unreachable_board_is_one_line(loopback, tflite, x):
    host = dataclasses.replace(loopback.host, name="gone", port=sshboard.free_port())
    with pytest.raises(remote.BoardUnavailable) as exc:
        remote.measure(host, {"new": tflite}, x, outputs=("new",))
    assert one_line(exc).startswith("board gone (")
    assert "unreachable: " in str(exc.value) and "refused" in str(exc.value)


def test_a_board_without_the_runtime_is_one_line_and_keeps_nothing(loopback, tflite, x):
    bare = dataclasses.replace(loopback.host, python=loopback.python_without_runtime())
    with pytest.raises(remote.BoardUnavailable) as exc:
        remote.measure(bare, {"new": tflite}, x, outputs=("new",))
    assert "missing runtime: " in one_line(exc) and "ai-edge-litert" in str(exc.value)
    nowhere = dataclasses.replace(loopback.host, python="/nonexistent/bin/python")
    with pytest.raises(remote.BoardUnavailable) as exc:
        remote.measure(nowhere, {"new": tflite}, x, outputs=("new",))
    assert "missing runtime: no executable Python at /nonexistent/bin/python" in one_line(exc)
    assert list(loopback.tmp.iterdir()) == []


def test_a_failed_measurement_removes_its_directory(loopback, x):
    with pytest.raises(remote.BoardUnavailable) as exc:
        remote.measure(loopback.host, {"new": b"not a model"}, x, outputs=("new",))
    assert "measurement failed: " in one_line(exc)
    assert list(loopback.tmp.iterdir()) == []


def test_a_second_gate_waits_for_the_board_lock(loopback, tflite, x):
    busy = dataclasses.replace(loopback.host, lock_timeout=0)
    fd = os.open(board.LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:  # the loopback board's /tmp is this machine's: hold its lock as another gate
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(remote.BoardUnavailable) as exc:
            remote.measure(busy, {"new": tflite}, x, outputs=("new",))
        assert f"busy: another gate held {board.LOCK}" in one_line(exc)
    finally:
        os.close(fd)
    assert list(loopback.tmp.iterdir()) == []
    # Released: a gate that waits as long as it takes (another test's gate may hold it).
    again = remote.measure(loopback.host, {"new": tflite}, x, outputs=("new",))
    assert again.outputs["new"].shape[0] == len(x)


def litert_version() -> str:
    from importlib import metadata

    return metadata.version("ai-edge-litert")
