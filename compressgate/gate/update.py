"""The baseline update policy: which check writes its baseline under which mode, what
"missing" may add to a stored baseline, and how a verdict reads once its baseline was
rewritten on purpose. Pure: the session does the writing."""

from __future__ import annotations

from typing import Literal

from compressgate.gate import baselines
from compressgate.gate.records import Status, Verdict

UpdateMode = Literal["none", "all", "failed", "missing"]
UPDATE_MODES: tuple[str, ...] = ("none", "all", "failed", "missing")


def wanted(mode: str, verdict: Verdict, *, missing: bool) -> bool:
    """Whether ``mode`` writes the baseline of a check with ``verdict`` (``missing``:
    the baseline lacks a figure the check reads)."""
    return (mode == "all" or (mode == "failed" and verdict.failed)
            or (mode == "missing" and missing))


def only_missing(stored: baselines.Baseline, change: baselines.Change, machine_class: str,
                 *, artifact_at_hand: bool, other_build: bool) -> baselines.Change:
    """The parts of ``change`` the baseline lacks ("missing" moves nothing recorded):
    input digests, this machine class's memory figure, the file's sha256 and the
    accepted artifact (only the very file the baseline records, when it is not at
    hand). The record keeps the build it names: a sha256 is added only on that build
    (``other_build`` False), since bytes made by another build (another machine class)
    would then be checked as the recording build's."""
    metrics = change.metrics or {}
    recorded = stored.metrics.get(baselines.ARTIFACT_FIGURE)
    sha = metrics.get(baselines.ARTIFACT_FIGURE)
    if recorded is None and other_build:
        sha = None
    artifact = None
    # Without a recorded sha256 (another build's record), no file is vouched for.
    if (recorded is None and sha) or (recorded is not None and recorded == sha
                                      and not artifact_at_hand):
        artifact = change.artifact
    machine = change.machine if change.machine and not any(
        k in stored.machine(machine_class) for k in change.machine) else None
    return baselines.Change(
        {baselines.ARTIFACT_FIGURE: sha} if recorded is None and sha else None,
        change.inputs if not stored.inputs else None, machine, artifact)


def settled(verdict: Verdict, mode: str) -> Verdict:
    """``verdict`` after its baseline was rewritten on purpose: "missing" settles the rows
    that lacked a figure, the other modes every failed row too (the limits they were
    judged against no longer apply)."""
    def settles(row) -> bool:
        return row.missing if mode == "missing" else row.missing or row.status.failed

    return verdict.with_rows(tuple(
        r.settled(Status.PASS, "recorded now") if settles(r) else r.settled(r.status, r.note)
        for r in verdict.rows))
