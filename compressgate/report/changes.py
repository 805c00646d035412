"""What moved against the baselines in a gate run, for the reports.

For each gated result: the figures the gate judges (accuracy, size, gzip size, sparsity,
latency ratio, conversion) that differ from the stored baseline, with the check's status
(regression, improved = stale baseline, or moved within tolerance). A baseline the run
rewrote (``--compressgate-update``) is shown by the diff of that update; a missing or
unusable baseline file is a change entry of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressgate.errors import BaselineError
from compressgate.gate import baselines
from compressgate.gate.records import CheckRecord, Outcome, Status
from compressgate.measure.machine import machine_class, this_machine
from compressgate.pipeline.record import ResultRow
from compressgate.report.view import Missing, ReportRow

SHOWN = ("converted", *baselines.JUDGED, "latency_ratio")
_JUDGING = ("baseline", "latency")


def _entry(model: str, recipe: str, metric: str, old: str, new: str, change: str,
           status: str, note: str = "") -> dict[str, Any]:
    return {"model": model, "recipe": recipe, "metric": metric, "baseline": old, "now": new,
            "change": change, "status": status, "note": note}


def _change(metric: str, old: str, new: str, change: str) -> str:
    """Accuracy moves in points (the tolerance's unit); the rest as diff_rows says."""
    if metric == "accuracy":
        try:
            return f"{(float(new) - float(old)) * 100:+.2f} pts"
        except ValueError:
            pass
    return change


def _judged(records: list[CheckRecord]) -> dict[tuple[str, str], dict[str, str]]:
    """(model, recipe) -> metric -> 'regression' or 'improved', from the gate's records."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for record in records:
        if record.check not in _JUDGING:
            continue
        marks = out.setdefault(record.key, {})
        for metric in record.stale:
            marks.setdefault(metric, Status.IMPROVED)
        for key in record.regressions:
            # The accepted file scoring worse here than when accepted moves "accuracy" too.
            marks["accuracy" if key == "accepted_accuracy" else key] = Status.REGRESSION
    return out


def _updated(records: list[CheckRecord]) -> dict[tuple[str, str], list[tuple[str, list]]]:
    out: dict[tuple[str, str], list[tuple[str, list]]] = {}
    for record in records:
        if record.update:
            out.setdefault(record.key, []).append((record.update.reason, record.update.diff))
    return out


def _shown(result: ResultRow) -> dict[str, Any]:
    """The figures of ``SHOWN`` a result has (None: not measured)."""
    return {"converted": result.converted, **{k: getattr(result, k) for k in baselines.JUDGED},
            "latency_ratio": result.latency.ratio if result.latency else None}


def baseline_changes(rows: list[ReportRow], records: list[CheckRecord],
                     directory: Path, create_hint: str, *,
                     machine: str | None = None) -> list[dict[str, Any]]:
    """Change entries for every gated row (see the module docstring); machine-bound
    figures are read from the record of the class that judged the case (a merged
    shard's ``CheckRecord.machine_class``), else ``machine``'s (default: this
    machine's class)."""
    judged, updated = _judged(records), _updated(records)
    default = machine or machine_class(this_machine())
    judged_on = {r.key: r.machine_class for r in records if r.machine_class}
    entries = []
    for row in rows:
        model, recipe = row.result.key
        if row.status == Outcome.UNSUPPORTED:
            continue  # declared unsupported: no baseline by design
        if (model, recipe) in updated:
            for reason, diff in updated[(model, recipe)]:
                entries += [_entry(model, recipe, m, a, b, _change(m, a, b, c), "updated",
                                   f"baseline {reason}") for m, a, b, c in diff if m in SHOWN]
            continue
        path = baselines.path_for(directory, model, recipe)
        try:
            stored = baselines.load(path, model, recipe)
        except BaselineError as exc:
            entries.append(_entry(model, recipe, "baseline", "-", "-", "", "unusable", str(exc)))
            continue
        if stored is None:
            entries.append(_entry(model, recipe, "baseline", "-", "-", "", "missing",
                                  f"no baseline; create it with: {create_hint}"))
            continue
        # Machine-bound figures are compared with the judging class's record only.
        here = judged_on.get((model, recipe), default)
        recorded = {**stored.metrics, **stored.machine(here)}
        now = {k: v for k, v in _shown(row.result).items() if v is not None and k in recorded}
        old = baselines.Baseline(path, model, recipe,
                                 {k: recorded[k] for k in now}, stored.environment)
        new = baselines.Baseline(path, model, recipe, now, stored.environment)
        marks = judged.get((model, recipe), {})
        entries += [_entry(model, recipe, m, a, b, _change(m, a, b, c), marks.get(m, "moved"))
                    for m, a, b, c in baselines.diff_rows(old, new)]
    return entries


def missing_results(records: list[CheckRecord],
                    cases: list[tuple[str, str]] | None) -> list[Missing]:
    """Cases without a result row: those whose checks ran (with their first error), and
    those of ``cases`` that did not run at all in this session."""
    have = {r.key for r in records if r.row is not None}
    seen = {r.key for r in records}
    errors: dict[tuple[str, str], str] = {}
    for record in records:
        if record.key not in have and record.failed and record.message:
            errors.setdefault(record.key, f"{record.check}: "
                                          + record.message.strip().splitlines()[0])
    out = [Missing(m, r, errors.get((m, r)) or "its checks ran, but its conversion check "
                                               "(which records the result) did not")
           for m, r in sorted(seen - have)]
    out += [Missing(m, r, "not run in this session", ran=False)
            for m, r in cases or [] if (m, r) not in seen]
    return out
