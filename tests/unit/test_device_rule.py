"""The device check's rule: each board judged in its own class, a board that measured
nothing not judged, and the board's figures carried to the reports."""

import dataclasses

from compressgate.gate.device import check_device, only_missing, record
from compressgate.gate.records import CheckRecord, Status, Verdict
from compressgate.measure.stats import LatencyPairs
from compressgate.pipeline.boards import BoardRun
from compressgate.pipeline.record import BoardFigures, LatencyFigures, ResultRow
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

CLASS = "aarch64 asimd+asimddp (board pi5)"


def pairs(ratio: float, n: int = 24) -> LatencyPairs:
    # A little alternating noise: a steady ratio with a finite interval.
    ref = tuple(1.0 + 0.01 * (i % 3) for i in range(n))
    return LatencyPairs(ref, tuple(r * ratio * (1 + 0.002 * (i % 2)) for i, r in enumerate(ref)))


def run(**changes) -> BoardRun:
    figures = BoardFigures("pi5", "ci@pi5.local", CLASS, "Cortex-A76", "ai-edge-litert 2.3.0",
                           peak_memory=1_000_000, accepted_memory=1_000_000, rows=50,
                           output_agreement=0.98, output_max_quanta=3, output_max_diff=0.01)
    fields = {"pairs": pairs(0.5), "side": pairs(1.0)}
    fields.update({k: changes.pop(k) for k in list(changes) if k in fields})
    return BoardRun(dataclasses.replace(figures, **changes), **fields,
                    fingerprint={"arch": "aarch64"}, versions={"ai-edge-litert": "2.3.0"})


def rows(verdict: Verdict) -> dict[str, object]:
    return {r.metric: r.status for r in verdict.rows}


def judge(board: BoardRun, promise: Promise | None = None, machines=None) -> Verdict:
    return check_device("m", "ptq_int8", [board], promise or Promise(), machines or {},
                        Tolerances())


def test_a_board_that_measured_nothing_is_one_row_not_judged():
    verdict = judge(run(error="board pi5 (ci@pi5.local): unreachable: Connection refused"))
    (row,) = verdict.rows
    assert row.status == Status.SKIPPED and not verdict.failed
    assert row.note == "not judged: board pi5 (ci@pi5.local): unreachable: Connection refused"
    assert record(run(error="x")) is None


def test_every_row_names_the_board_and_its_class_record_is_missing_at_first():
    verdict = judge(run())
    assert all(m.startswith("board pi5: ") for m in rows(verdict))
    got = rows(verdict)
    assert got["board pi5: outputs vs CI machine"] == Status.INFO  # no promise: shown
    assert got["board pi5: time vs accepted"] == Status.PASS
    assert got["board pi5: latency_ratio"] == Status.SKIPPED
    assert got["board pi5: peak_memory_bytes"] == Status.SKIPPED
    assert any(CLASS in n for n in verdict.notes)


def test_the_board_class_record_judges_latency_and_memory_there():
    recorded = record(run())
    assert recorded is not None and recorded["peak_memory_bytes"] == 1_000_000
    slower = run(pairs=pairs(1.0), peak_memory=5_000_000)
    got = rows(judge(slower, machines={CLASS: recorded}))
    assert got["board pi5: latency_ratio"] == Status.REGRESSION
    assert got["board pi5: peak_memory_bytes"] == Status.REGRESSION
    assert got["board pi5: peak memory vs accepted"] == Status.REGRESSION
    # Another class's record judges nothing here.
    assert rows(judge(slower, machines={"x86_64 avx2": recorded}))[
        "board pi5: latency_ratio"] == Status.SKIPPED


def test_outputs_against_the_ci_machine_are_judged_by_the_kernel_parity_promise():
    promise = Promise(min_kernel_agreement=0.99)
    assert rows(judge(run(), promise))["board pi5: outputs vs CI machine"] == Status.FAIL
    assert rows(judge(run(output_agreement=1.0), promise))[
        "board pi5: outputs vs CI machine"] == Status.PASS


def test_a_slower_artifact_on_the_board_is_a_regression():
    got = rows(judge(run(side=pairs(1.6))))
    assert got["board pi5: time vs accepted"] == Status.REGRESSION


def test_board_figures_survive_the_row_and_the_record_json():
    figures = dataclasses.replace(run().figures, latency=LatencyFigures(0.5, 0.4, 0.6))
    row = ResultRow("m", "ptq_int8", True, boards=(figures,))
    assert ResultRow.from_dict(row.to_dict()).boards == (figures,)
    checked = CheckRecord.of(judge(run()), message="", boards=(figures,))
    assert CheckRecord.from_dict(checked.to_dict()).boards == (figures,)


def test_update_missing_adds_a_board_class_and_moves_no_recorded_figure():
    figures = record(run())
    assert figures is not None
    assert only_missing({CLASS: figures}, {}) == {CLASS: figures}
    recorded = {CLASS: {"latency_ratio": 0.7, "fingerprint": {"arch": "aarch64"}}}
    added = only_missing({CLASS: figures}, recorded)
    assert added == {CLASS: {"peak_memory_bytes": 1_000_000}}
    assert only_missing({CLASS: figures}, {CLASS: figures}) == {}
