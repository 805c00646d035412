"""The device check: a result measured on each of the project's boards, judged there
(``compressgate.pipeline.boards``); pure, like the other rules.

Per board, every row named after it: the board's outputs of the new file against this
machine's (kernel parity across architectures: judged by ``promise.min_kernel_agreement``
where the recipe promises one, shown otherwise), peak memory against the accepted file
measured there and against the board class's record, and latency exactly as the latency
check judges it (``gate.latency``), from pairs timed on the board, against the board
class's record. A board that measured nothing is one "not judged" row: never a pass,
and a failure under ``--compressgate-strict``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from compressgate.gate.baselines import MEMORY_FIGURE, UPDATE_MISSING
from compressgate.gate.latency import LatencyReference, check_latency
from compressgate.gate.records import Row, Status, Verdict, fmt
from compressgate.gate.rules import EPSILON, _one_sided
from compressgate.pipeline.boards import BoardRun
from compressgate.recipes import Promise
from compressgate.tolerances import Tolerances

DEVICE_CHECK = "device"


def check_device(model: str, recipe: str, runs: Sequence[BoardRun], promise: Promise,
                 machines: dict[str, dict[str, Any]], tol: Tolerances,
                 hint: str = UPDATE_MISSING, *, side_note: str = "",
                 side_identical: bool = False) -> Verdict:
    """Each board's rows (see the module docstring). ``machines``: the baseline's records
    per machine class (a board's class is its own); ``side_note`` / ``side_identical``:
    why no accepted file was timed against the new one, as in the latency check."""
    rows: list[Row] = []
    notes: list[str] = []
    for run in runs:
        board_rows, board_notes = _board(model, recipe, run, promise,
                                         machines.get(run.figures.machine_class or "", {}),
                                         tol, hint, side_note, side_identical)
        rows += board_rows
        notes += board_notes
    return Verdict(model, recipe, DEVICE_CHECK, tuple(rows), tuple(notes))


def _named(board: str, row: Row) -> Row:
    return dataclasses.replace(row, metric=f"board {board}: {row.metric}",
                               key=f"board.{board}.{row.key}")


def _board(model: str, recipe: str, run: BoardRun, promise: Promise,
           recorded: dict[str, Any], tol: Tolerances, hint: str, side_note: str,
           side_identical: bool) -> tuple[list[Row], list[str]]:
    f = run.figures
    if f.error is not None:
        return [Row(f"board {f.board}", None, "measured", "-", Status.SKIPPED,
                    f"not judged: {f.error}", key=f"board.{f.board}")], []
    where = f"board class {f.machine_class}"
    limit = promise.min_kernel_agreement
    said = (f"top-1 on {fmt(f.rows)} test rows against this machine's outputs; largest "
            f"difference {fmt(f.output_max_quanta)} quanta, {fmt(f.output_max_diff)} of "
            "the range")
    rows = [Row("outputs vs CI machine", f.output_agreement, limit,
                ">= limit" if limit is not None else "-",
                Status.INFO if limit is None else
                Status.PASS if f.output_agreement is not None
                and f.output_agreement >= limit - EPSILON else Status.FAIL,
                said if limit is not None else f"{said} (no promise)",
                key="output_agreement")]
    rows += _memory(f.peak_memory, f.accepted_memory, f.memory_error, recorded, tol, hint,
                    where)
    notes = [f"board {f.board} ({f.ssh}): class {f.machine_class}; {f.cpu}; {f.runtime}"]
    if run.pairs is not None:
        base = recorded.get("latency_ratio")
        interval = (recorded.get("latency_ratio_low", base),
                    recorded.get("latency_ratio_high", base)) if base else None
        reference = LatencyReference(base, interval, run.side, side_note, side_identical,
                                     f.machine_class or "")
        latency = check_latency(model, recipe, run.pairs, promise, reference, tol, hint)
        rows += list(latency.rows)
        notes += [f"board {f.board}: {n}" for n in latency.notes]
    return [_named(f.board, r) for r in rows], notes


def _memory(peak: int | None, accepted: int | None, error: str | None,
            recorded: dict[str, Any], tol: Tolerances, hint: str, where: str) -> list[Row]:
    """Peak memory on the board: against the accepted file measured there in this run,
    and against the board class's record."""
    tol_text = f"+{tol.memory_pct} % +{tol.memory_kib:g} KiB"
    if peak is None:
        return [Row(MEMORY_FIGURE, None, recorded.get(MEMORY_FIGURE), tol_text, Status.FAIL,
                    error or "not measured")]
    out = []
    if accepted is not None:
        out.append(_one_sided("peak memory vs accepted", peak, accepted,
                              higher_is_better=False, allowed=tol.memory_allowed(accepted),
                              tol_text=tol_text, note="both measured on the board in this run"))
    base = recorded.get(MEMORY_FIGURE)
    if base is None:
        out.append(Row(MEMORY_FIGURE, peak, None, tol_text, Status.SKIPPED,
                       f"no record for {where}: a runtime that needs more memory would go "
                       f"unseen there; record it with: {hint}", missing=True))
    else:
        out.append(_one_sided(MEMORY_FIGURE, peak, base, higher_is_better=False,
                              allowed=tol.memory_allowed(base), tol_text=tol_text,
                              note=f"recorded for {where}"))
    return out


def record(run: BoardRun) -> dict[str, Any] | None:
    """What a board's class records of a run (None: the board measured nothing): the
    latency ratio and its interval, peak memory, the board's fingerprint and runtime."""
    f = run.figures
    if f.error is not None:
        return None
    figures: dict[str, Any] = {"fingerprint": run.fingerprint, "versions": run.versions}
    if run.pairs is not None:
        low, high = run.pairs.ratio_interval()
        figures.update({"latency_ratio": run.pairs.ratio, "latency_ratio_low": low,
                        "latency_ratio_high": high})
    if f.peak_memory is not None:
        figures[MEMORY_FIGURE] = f.peak_memory
    return figures


# Recorded with a class's figures, describing them (never "missing" on their own).
_ABOUT = ("fingerprint", "versions")
_LATENCY = ("latency_ratio", "latency_ratio_low", "latency_ratio_high")


def only_missing(classes: dict[str, dict[str, Any]],
                 machines: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``--compressgate-update=missing`` records of the boards' ``classes``: the
    figures their class does not have yet in ``machines`` (a recorded one never moves),
    with the board's fingerprint and versions when a class is new."""
    out = {}
    for cls, figures in classes.items():
        have = machines.get(cls, {})
        # A ratio and its interval are one figure: recorded together or not at all.
        held = set(have) | (set(_LATENCY) if "latency_ratio" in have else set())
        new = {k: v for k, v in figures.items() if k not in held and k not in _ABOUT}
        if new:
            out[cls] = new | ({k: figures[k] for k in _ABOUT if k in figures}
                              if not have else {})
    return out
