"""What a gate run tells people: the closing terminal summary and the files in reports/."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compressgate.files import write_text_atomic
from compressgate.gate import baselines
from compressgate.gate.accept import accept_block
from compressgate.gate.records import CheckRecord, Outcome
from compressgate.gate.session import Settings
from compressgate.report.changes import baseline_changes, missing_results
from compressgate.report.summary import write_summary
from compressgate.report.view import ReportRow


def _verdict(records: list[CheckRecord]) -> tuple[Outcome, str]:
    """A result's outcome from its checks' records, and the same in words."""
    if any(r.expected for r in records):
        return Outcome.UNSUPPORTED, "unsupported (xfail)"
    failed = [r.check for r in records if r.failed]
    stale = [r.check for r in records if r.stale and not r.failed]
    if failed:
        return Outcome.FAIL, "FAIL: " + ", ".join(failed)
    if stale:
        return Outcome.STALE, f"pass (stale: {', '.join(stale)})"
    return Outcome.PASS, "pass"


def _rows(records: list[CheckRecord]) -> list[ReportRow]:
    """Summary rows (from conversion checks) with this run's latency and verdict."""
    latency = {r.key: r.latency for r in records if r.latency}
    boards = {r.key: r.boards for r in records if r.boards}
    rows = []
    for record in records:
        if record.row is not None:
            key = record.row.key
            mine = [r for r in records if r.key == key]
            outcome, verdict = _verdict(mine)
            rows.append(ReportRow(
                record.row.with_latency(latency.get(key, record.row.latency))
                .with_boards(boards.get(key, record.row.boards)), outcome, verdict,
                reasons=tuple(f"{r.check}: {why}" for r in mine if r.failed
                              for why in r.reasons if why),
                skipped=tuple(f"{r.check}: {what}" for r in mine for what in r.skipped)))
    # Failures on top: the table is read in a CI job summary or a pull request.
    return sorted(rows, key=lambda r: (r.status != Outcome.FAIL, *r.result.key))


def _updates(records: list[CheckRecord]) -> list[tuple[str, str, list]]:
    """One entry per baseline file: the checks that wrote it merged, first reason kept."""
    merged: dict[str, tuple[str, list]] = {}
    for record in records:
        if record.update:
            path, reason, diff = record.update.path, record.update.reason, record.update.diff
            first, rows = merged.get(path, (reason, []))
            merged[path] = (first, sorted({tuple(r) for r in rows} | {tuple(r) for r in diff}))
    return [(path, reason, rows) for path, (reason, rows) in sorted(merged.items())]


def shard_facts(settings: Settings, cases: list[tuple[str, str]],
                all_cases: list[tuple[str, str]]) -> dict[str, Any]:
    """What ``compressgate merge`` needs to know of a run: its shard (``1/1`` when not
    sharded), the cases it gates and every case of the project, the update mode."""
    return {"shard": str(settings.shard or "1/1"), "cases": [list(c) for c in cases],
            "all_cases": [list(c) for c in all_cases], "update": settings.update}


def write_reports(records: list[CheckRecord], settings: Settings,
                  cases: list[tuple[str, str]] | None = None, *,
                  facts: dict[str, Any] | None = None) -> list[Path]:
    """Write the summaries, ``index.html`` and (when updating) ``baseline-diff.md``.

    ``cases`` is every model x recipe the session gates; those without a result are
    reported as missing (without it: those that have records but no result). ``facts``
    go into ``summary.json`` over this process's own (a merge passes the shards')."""
    if settings.reports is None:
        return []
    rows = _rows(records)
    hint = f"{settings.command} {baselines.UPDATE_MISSING}"
    meta = {"source": "pytest gate",
            "created": datetime.now(UTC).isoformat(timespec="seconds"), **run_facts(),
            **(facts or {})}
    changes = baseline_changes(rows, records, settings.baselines, hint,
                               machine=meta["machine_class"])
    written = write_summary(settings.reports, rows, meta, changes=changes,
                            missing=missing_results(records, cases))
    # Every check's record (verdict, reasons, skips, headroom to its limit), for tools.
    checks = settings.reports / "checks.json"
    write_text_atomic(checks, json.dumps(
        [{k: v for k, v in r.to_dict().items() if k != "row"} for r in records], indent=1,
        sort_keys=True, default=str) + "\n")
    written.append(checks)
    if settings.update != "none":
        path = settings.reports / "baseline-diff.md"
        # A merge's records carry the class of the shard that wrote them.
        written_on = {r.update.path: r.machine_class or meta["machine_class"]
                      for r in records if r.update}
        write_text_atomic(path, baselines.diff_markdown(_updates(records), written_on))
        written.append(path)
    return written


_PACKAGES = ("compressgate", "tensorflow", "tf-keras", "tensorflow-model-optimization",
             "ai-edge-litert")


def run_facts() -> dict[str, Any]:
    """Where the run happened: library versions, the machine class and fingerprint, and
    the commit."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    from compressgate.measure.machine import machine_class, this_machine

    versions = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:  # from the installed metadata: no TensorFlow import in the controller
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    facts: dict[str, Any] = {"versions": versions,
                             "machine_class": machine_class(this_machine()),
                             "machine": this_machine()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        facts["commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def skipped_groups(records: list[CheckRecord]) -> list[tuple[str, list[str]]]:
    """Comparisons the run could not make, grouped by what and why: (what, cases)."""
    groups: dict[str, list[str]] = {}
    for record in records:
        for what in record.skipped:
            groups.setdefault(f"{record.check}: {what}", []).append(
                f"{record.model}-{record.recipe}")
    return sorted(groups.items())


def summary_lines(records: list[CheckRecord], written: list[Path]) -> list[str]:
    failed = [r for r in records if r.failed and not r.expected]
    expected = [r for r in records if r.expected]
    stale = [r for r in records if r.stale and not r.failed]
    updates = _updates(records)
    checks = len(records)
    skips = sum(len(r.skipped) for r in records)
    lines = [f"{checks} checks: {len(failed)} failed, {len(stale)} stale baselines, "
             f"{len(updates)} baselines written, {skips} comparisons not judged here"]
    if failed:
        lines.append("")
        lines.append("Failed (regressions, broken promises, missing baselines):")
        lines += [f"  {r.model}-{r.recipe}-{r.check}" for r in failed]
    accept = [r.accept for r in failed if r.accept]
    if accept:
        lines.append("")
        lines += accept_block(accept)
    if expected:
        lines.append("")
        lines.append("Declared unsupported (strict xfail; remove the declaration once it "
                     "converts):")
        lines += [f"  {r.model}-{r.recipe}" for r in expected]
    groups = skipped_groups(records)
    if groups:
        lines.append("")
        lines.append("Not judged here (these protections are missing on this machine; "
                     "--compressgate-strict makes them fail):")
        for what, cases in groups:
            lines.append(f"  {what}")
            lines.append(f"    {len(cases)} results: {', '.join(cases)}")
    if stale:
        lines.append("")
        lines.append("Stale baselines (better than recorded beyond tolerance; refresh with "
                     "--compressgate-update=all):")
        lines += [f"  {r.model}-{r.recipe}-{r.check}: {', '.join(r.stale)}" for r in stale]
    for path, reason, diff in updates:
        lines.append("")
        lines.append(f"{path} ({reason})")
        lines += [f"  {m}: {a} -> {b}  {c}" for m, a, b, c in diff]
    if written:
        lines.append("")
        lines.append("reports: " + ", ".join(str(p) for p in written))
    return lines
