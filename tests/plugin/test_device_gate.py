"""The gate on a board: the tiny fixture gated end to end on a loopback-SSH board
(``tests/sshboard.py``), and boards that cannot measure, each in one line."""

import hashlib
import json

import pytest
import sshboard

pytestmark = [pytest.mark.tf,
              pytest.mark.skipif(sshboard.missing() is not None,
                                 reason=f"no loopback board: {sshboard.missing()}")]

GATE_TEST = "def test_gate(compressgate_check):\n    compressgate_check()\n"


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    with sshboard.loopback_board(tmp_path_factory.mktemp("board")) as started:
        yield started


def entry(host, **changes) -> dict:
    board = {"ssh": host.ssh, "python": host.python, "port": host.port,
             "identity": host.identity, "ssh_options": list(host.options)}
    return {**board, **changes}


@pytest.fixture
def gate(pytester, tiny_fixtures, tmp_path):
    pytester.makepyfile(test_tiny_board_gate=GATE_TEST)
    baselines, reports = tmp_path / "baselines", tmp_path / "reports"

    def run(boards: dict, *args):
        manifest = json.loads((tiny_fixtures / "manifest.json").read_text())
        model = manifest["models"]["tiny_mlp"]
        model.update(model=str(tiny_fixtures / model["model"]),
                     data=str(tiny_fixtures / model["data"]))
        config = tmp_path / "project.json"
        config.write_text(json.dumps({**manifest, "boards": boards}))
        return pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "--compressgate-config", str(config),
            "--compressgate-baselines", str(baselines), "--compressgate-reports", str(reports),
            "--compressgate-recipes", "float,ptq_int8", *args)

    run.baselines, run.reports = baselines, reports
    return run


def test_the_tiny_fixture_is_gated_on_a_loopback_board(gate, loopback):
    boards = {"loopback": entry(loopback.host)}
    result = gate(boards, "--compressgate-update=missing")
    result.assert_outcomes(passed=9)  # 8 checks here, and the device check on the board
    record = json.loads((gate.baselines / "tiny_mlp" / "ptq_int8.json").read_text())
    board_class = [c for c in record["machines"] if c.endswith("(board loopback)")]
    assert len(board_class) == 1 and len(record["machines"]) == 2
    mine = record["machines"][board_class[0]]
    assert mine["latency_ratio"] > 0 and mine["peak_memory_bytes"] > 0
    assert mine["versions"]["ai-edge-litert"] and mine["fingerprint"]["arch"]

    # Again, now judged against the board class's own record: outputs, memory, latency.
    result = gate(boards)
    result.assert_outcomes(passed=9)
    summary = json.loads((gate.reports / "summary.json").read_text())
    row = next(r for r in summary["results"] if r["recipe"] == "ptq_int8")
    (board,) = row["boards"]
    assert board["board"] == "loopback" and board["machine_class"] == board_class[0]
    # The same machine behind the loopback: the same kernels, the same outputs.
    assert board["output_agreement"] == 1.0 and board["output_max_quanta"] == 0
    assert board["output_max_diff"] == 0
    assert board["latency"]["latency_ratio"] > 0 and board["peak_memory"] > 0
    assert not [s for s in row["skipped"] if s.startswith("device:")], row["skipped"]
    assert list(loopback.tmp.iterdir()) == []

    # An accepted file other than the new one (the same model, one byte longer, recorded
    # as accepted): the board times the two side by side and measures both peaks.
    artifact = gate.baselines / "tiny_mlp" / "ptq_int8.tflite"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    path = gate.baselines / "tiny_mlp" / "ptq_int8.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["tflite_sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()
    path.write_text(json.dumps(doc))
    result = gate(boards, "-k", "device")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((gate.reports / "checks.json").read_text())
    (board,) = record["boards"]
    assert board["latency_vs_accepted"]["latency_ratio"] > 0 and board["accepted_memory"] > 0
    assert "board loopback: time vs accepted" in record["message"]
    assert "both timed in this run" in record["message"]
    assert list(loopback.tmp.iterdir()) == []


def test_a_board_that_cannot_measure_is_one_line_and_not_judged(gate, loopback):
    boards = {"gone": entry(loopback.host, port=sshboard.free_port()),
              "bare": entry(loopback.host, python=loopback.python_without_runtime())}
    # The device check alone; without a baseline it also fails as missing, which leaves
    # the two boards' rows to read.
    result = gate(boards, "--compressgate-no-latency", "-k", "device")
    result.assert_outcomes(failed=1)
    (record,) = json.loads((gate.reports / "checks.json").read_text())
    assert record["check"] == "device" and len(record["skipped"]) == 2, record
    gone, bare = sorted(record["skipped"], key=lambda s: "bare" in s)
    assert gone.startswith("board gone: not judged: board gone (") and \
        ": unreachable: " in gone and "\n" not in gone
    assert bare.startswith("board bare: not judged: board bare (") and \
        ": missing runtime: " in bare and "\n" not in bare
    assert not [r for r in record["reasons"] if "board gone" in r or "board bare" in r]
    assert list(loopback.tmp.iterdir()) == []

    strict = gate(boards, "--compressgate-no-latency", "--compressgate-strict", "-k", "device")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*strict: not judged here: not judged: board gone (*",
                                 "*strict: not judged here: not judged: board bare (*"])
