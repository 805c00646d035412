"""Put a sharded gate back together: the shards' reports -> one verdict, one report.

Each shard's gate writes ``summary.json`` (its rows, its shard ``K/N``, the cases it
gates and every case of the project, the library versions and machine class, pytest's
exit status) and ``checks.json`` (every check's record). The merge rebuilds the records,
checks that the shards add up to one run (every shard present once, every case reported
by exactly one shard, the same library versions everywhere, no shard that stopped for
a reason other than a failed check) and writes the reports through the same code as an
unsharded run, so the rows and verdicts are the ones that run would give.

The machine class may differ between shards (hosted runner pools mix CPU generations):
each shard judged its machine-bound figures (latency, peak memory, the recording build's
bytes) against its own class's records, so nothing needs the classes to agree. The
merged reports say which class judged which case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compressgate.gate import shards
from compressgate.gate.records import CheckRecord
from compressgate.gate.session import Settings
from compressgate.pipeline.record import ResultRow
from compressgate.report.gate_run import write_reports

# The (model, recipe) key of a gate.session.Case, as the shards write it.
CaseKey = tuple[str, str]
# pytest's exit codes other than 0 (all passed) and 1 (some failed); 5 is expected of a
# shard that owns no case.
_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


@dataclass(frozen=True)
class ShardReport:
    directory: Path
    shard: shards.Shard
    meta: dict[str, Any]
    records: list[CheckRecord]

    @property
    def name(self) -> str:
        return f"{self.directory} (shard {self.shard})"

    @property
    def all_cases(self) -> list[CaseKey]:
        return [tuple(c) for c in self.meta.get("all_cases", [])]  # type: ignore[misc]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not found (did this shard's gate run and write its "
                         "reports?)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from None


def read(directory: Path) -> ShardReport:
    """A shard's reports; ``ValueError`` with one line naming the file otherwise."""
    summary = _json(directory / "summary.json")
    checks = _json(directory / "checks.json")
    if not isinstance(summary, dict) or "shard" not in summary or "all_cases" not in summary:
        raise ValueError(f"{directory / 'summary.json'}: no shard facts (expected a gate "
                         "report written by compressgate >= the version with "
                         "--compressgate-shard, not `compressgate run`'s)")
    try:
        shard = shards.parse(summary["shard"], where=str(directory / "summary.json"))
        records = [CheckRecord.from_dict(doc) for doc in checks]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{directory / 'checks.json'}: not a list of check records "
                         f"({exc})") from None
    assert shard is not None
    rows = {(r["model"], r["recipe"]): ResultRow.from_dict(r)
            for r in summary.get("results", [])}
    # The result rows travel in summary.json; checks.json keeps only the verdicts.
    records = [replace(r, row=rows.get(r.key)) if r.check == "conversion" else r
               for r in records]
    return ShardReport(directory, shard, summary, records)


def _agreement(reports: list[ShardReport]) -> list[str]:
    """Shards from one matrix: the same shard count and project, each shard once,
    the same library versions (the machine class may differ: see the module)."""
    first, problems = reports[0], []
    seen: dict[int, ShardReport] = {}
    for report in reports:
        if report.shard.count != first.shard.count:
            problems.append(f"{report.name}: {first.name} is one of {first.shard.count} "
                            f"shards, this one of {report.shard.count}")
        elif report.shard.index in seen:
            earlier = seen[report.shard.index].directory
            problems.append(f"shard {report.shard} given twice: {earlier} and "
                            f"{report.directory}")
        seen.setdefault(report.shard.index, report)
        if set(report.all_cases) != set(first.all_cases):
            extra = sorted(set(report.all_cases) - set(first.all_cases))
            gone = sorted(set(first.all_cases) - set(report.all_cases))
            problems.append(f"{report.name}: gates another project than {first.name} "
                            f"(cases only here: {_names(extra) or 'none'}; only there: "
                            f"{_names(gone) or 'none'})")
        ours, theirs = first.meta.get("environment", {}), report.meta.get("environment", {})
        for key in sorted((set(ours) | set(theirs)) - {"machine"}):
            if ours.get(key) != theirs.get(key):
                problems.append(f"{key} version differs: {ours.get(key)} in {first.name}, "
                                f"{theirs.get(key)} in {report.name}")
    problems += [f"shard {i}/{first.shard.count}: no report given"
                 for i in range(1, first.shard.count + 1) if i not in seen]
    return problems


def _class(report: ShardReport) -> str:
    """The machine class a shard judged on (its environment's, as its baselines key it)."""
    return str(report.meta.get("environment", {}).get("machine")
               or report.meta.get("machine_class") or "unknown")


def judged_on(reports: list[ShardReport]) -> dict[str, str]:
    """Which class judged which shard's cases: ``{class: "shard 1/2: a x float, ..."}``."""
    out: dict[str, list[str]] = {}
    for report in reports:
        cases = list(dict.fromkeys(r.key for r in report.records))
        out.setdefault(_class(report), []).append(
            f"shard {report.shard} ({len(cases)} cases: {_names(cases) or 'none'})")
    return {cls: "; ".join(parts) for cls, parts in out.items()}


def _names(cases: list[CaseKey]) -> str:
    return ", ".join(f"{m} x {r}" for m, r in cases)


def _completeness(reports: list[ShardReport]) -> list[str]:
    """Every case reported by exactly one shard; no shard stopped early."""
    problems = []
    expected = reports[0].all_cases
    owners = shards.owner(expected, reports[0].shard.count)
    reported: dict[CaseKey, list[ShardReport]] = {}
    for report in reports:
        for key in dict.fromkeys(r.key for r in report.records):
            reported.setdefault(key, []).append(report)
        status = int(report.meta.get("exit_status", 0))
        if status == 1 and not any(r.failed and not r.expected for r in report.records):
            problems.append(f"{report.name}: pytest exited with 1 but no gate check "
                            "failed: a test outside the gate failed")
        elif status not in (0, 1) and not (status == 5 and not report.meta.get("cases")):
            problems.append(f"{report.name}: pytest exited with {status} "
                            f"({_EXIT.get(status, 'unknown')})")
    for case in expected:
        if case not in reported:
            problems.append(f"{case[0]} x {case[1]}: no result from any shard (shard "
                            f"{owners[case]}/{reports[0].shard.count} gates it)")
        elif len(reported[case]) > 1:
            problems.append(f"{case[0]} x {case[1]}: reported by "
                            + " and ".join(r.name for r in reported[case]))
    problems += [f"{m} x {r}: reported by {', '.join(s.name for s in by)}, but not a case "
                 "of the project" for (m, r), by in sorted(reported.items())
                 if (m, r) not in set(expected)]
    return problems


@dataclass(frozen=True)
class Merged:
    written: list[Path]
    problems: list[str]
    records: list[CheckRecord]

    @property
    def failed(self) -> list[CheckRecord]:
        return [r for r in self.records if r.failed and not r.expected]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed


def merge(directories: list[Path], settings: Settings) -> Merged:
    """Check the shards' reports in ``directories`` and write the merged reports to
    ``settings.reports`` (also when there are problems: what arrived is shown, what
    did not is listed as missing)."""
    reports, problems = [], []
    for directory in directories:
        try:
            reports.append(read(directory))
        except ValueError as exc:
            problems.append(str(exc))
    if not reports:
        return Merged([], problems or ["no shard reports given"], [])
    reports.sort(key=lambda r: r.shard.index)
    problems += _agreement(reports) + _completeness(reports)
    records = [replace(r, machine_class=r.machine_class or _class(report))
               for report in reports for r in report.records]
    first = reports[0]
    classes = list(dict.fromkeys(_class(r) for r in reports))
    update = next((r.meta["update"] for r in reports if r.meta.get("update", "none") != "none"),
                  "none")
    # Where the shards ran, not where the merge runs (run details, machine-bound changes).
    facts = {"source": f"pytest gate, {len(reports)} shards merged",
             "machine_class": " + ".join(classes),
             "judged_on": judged_on(reports),
             **({"machine": first.meta.get("machine")} if len(classes) == 1 else {}),
             **({"versions": first.meta["versions"]} if "versions" in first.meta else {}),
             "environment": {k: v for k, v in first.meta.get("environment", {}).items()
                             if k != "machine" or len(classes) == 1},
             "shard": "1/1", "cases": [list(c) for c in first.all_cases],
             "all_cases": [list(c) for c in first.all_cases],
             "update": update,
             "exit_status": int(bool(problems) or any(r.failed and not r.expected
                                                      for r in records)),
             "shards": [{"directory": str(r.directory), "shard": str(r.shard),
                         "machine_class": _class(r), "created": r.meta.get("created"),
                         "exit_status": r.meta.get("exit_status")} for r in reports]}
    written = write_reports(records, replace(settings, update=update), first.all_cases,
                            facts=facts)
    return Merged(written, problems, records)
