"""What the human-facing reports (``index.html``, ``summary.md``) show, format-neutral.

Every row gets a status from its verdict; rows are ordered so that what needs attention
(failures, missing results, unexpected conversion failures) comes first. Cells are plain
strings here; each writer escapes them for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Status -> (reading order, label). Lower comes first.
STATUSES = {
    "fail": (0, "FAIL"), "missing": (1, "missing"), "not converted": (2, "not converted"),
    "stale": (3, "stale baseline"), "measured": (4, "measured"), "pass": (5, "pass"),
    "unsupported": (6, "unsupported"),
}
ATTENTION = ("fail", "missing", "not converted")
# Change-table statuses, in reading order.
CHANGE_ORDER = ("regression", "missing", "unusable", "improved", "updated", "moved")


@dataclass(frozen=True)
class Missing:
    """A model x recipe the run was meant to report but has no figures for."""

    model: str
    recipe: str
    reason: str
    # False: not run in this session at all (deselected, or the run stopped early).
    ran: bool = True


@dataclass(frozen=True)
class ReportInput:
    """Everything a human-facing report is made from."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    # None: this run has no baseline information (``compressgate run``).
    changes: list[dict[str, Any]] | None = None
    missing: list[Missing] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "compressgate run"))

    @property
    def has_verdicts(self) -> bool:
        return any("verdict" in row for row in self.rows)


def status(row: dict[str, Any]) -> str:
    verdict = row.get("verdict")
    if verdict is None:
        return "measured" if row.get("converted") else "not converted"
    if verdict.startswith("FAIL"):
        return "fail"
    if verdict.startswith("unsupported"):
        return "unsupported"
    return "stale" if "stale" in verdict else "pass"


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows needing attention first; otherwise in the order given (model by model)."""
    return sorted(rows, key=lambda r: STATUSES[status(r)][0])


def counts(report: ReportInput) -> list[tuple[str, int]]:
    """(status, how many) in reading order, zero counts left out."""
    tally: dict[str, int] = {}
    for row in report.rows:
        tally[status(row)] = tally.get(status(row), 0) + 1
    missing = [m for m in report.missing if m.ran]
    if missing:
        tally["missing"] = tally.get("missing", 0) + len(missing)
    return sorted(tally.items(), key=lambda item: STATUSES[item[0]][0])


def headline(report: ReportInput) -> str:
    parts = [f"{n} {STATUSES[s][1]}" for s, n in counts(report)]
    return ", ".join(parts) or "no results"


def attention(report: ReportInput) -> list[tuple[str, str, str, str]]:
    """(status, model, recipe, why) for every result a person must look at."""
    items = [(status(r), r["model"], r["recipe"], _why(r, report.changes or []))
             for r in ordered(report.rows) if status(r) in ATTENTION]
    items += [("missing", m.model, m.recipe, m.reason) for m in report.missing if m.ran]
    return sorted(items, key=lambda item: (STATUSES[item[0]][0], item[1], item[2]))


def not_run(report: ReportInput) -> str:
    """One line naming the results this session did not run, or ''."""
    skipped = [f"{m.model} x {m.recipe}" for m in report.missing if not m.ran]
    if not skipped:
        return ""
    return (f"Not run in this session (deselected, or the run stopped early): "
            f"{len(skipped)} results: {', '.join(skipped)}.")


def _change_text(change: dict[str, Any]) -> str:
    if change["status"] == "missing":
        return change["note"]
    if change["status"] == "unusable":
        return f"unusable baseline: {change['note']}"
    return f"{change['metric']} {change['baseline']} -> {change['now']} ({change['change']})"


def _why(row: dict[str, Any], changes: list[dict[str, Any]]) -> str:
    """The verdict, the error, and what regressed against the baseline."""
    moved = [_change_text(c) for c in changes
             if (c["model"], c["recipe"]) == (row["model"], row["recipe"])
             and c["status"] in ("regression", "missing", "unusable")]
    parts = (row.get("verdict") or "", row.get("error") or "",
             "; ".join(row.get("reasons") or []), "; ".join(moved))
    return " — ".join(part for part in parts if part)


def not_judged(report: ReportInput) -> list[tuple[str, list[str]]]:
    """Comparisons this run could not make, grouped: (what and why, [model x recipe])."""
    groups: dict[str, list[str]] = {}
    for row in report.rows:
        for what in row.get("skipped") or []:
            groups.setdefault(what, []).append(f"{row['model']} x {row['recipe']}")
    return sorted(groups.items())


def _num(pattern: str):
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return pattern.format(value)
    return fmt


def _latency(row: dict[str, Any]) -> str:
    ratio = row.get("latency_ratio")
    if ratio is None:
        return ""
    low, high = row.get("latency_ratio_low"), row.get("latency_ratio_high")
    return f"{ratio:.2f} ({low:.2f}-{high:.2f})" if low is not None and high is not None \
        else f"{ratio:.2f}"


def _short(text: str, limit: int = 80) -> str:
    # The table stays scannable; the full reason is under "Needs attention".
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _clusters_note(row: dict[str, Any]) -> str:
    """Clustered recipes: distinct values per output channel of the weights (a note, not a
    column: only these rows have it, and the table must stay narrow)."""
    if row.get("clusters_max") is None:
        return ""
    return (f"{row['clusters_max']} values per channel (max; mean over tensors "
            f"{row['clusters_mean']:.1f})")


def _is_accuracy(row: dict[str, Any]) -> bool:
    return row.get("metric", "accuracy") == "accuracy"


def _tflm(row: dict[str, Any]) -> str:
    """TFLM: the arena KiB where the file runs there, "no" where it does not (why is under
    the check), "" when not measured; a promised target is starred."""
    loads, arena = row.get("tflm_loads"), row.get("tflm_arena_bytes")
    cell = "" if loads is None else "no" if not loads else \
        f"{arena / 1024:.1f}" if arena else "yes"
    return f"{cell}*" if cell and "tflm" in (row.get("targets") or ()) else cell


def _parity(row: dict[str, Any]) -> str:
    """XNNPACK vs reference kernels: top-1 agreement, largest difference in quanta."""
    agreement, quanta = row.get("kernel_agreement"), row.get("kernel_max_quanta")
    if agreement is None:
        return ""
    return f"{agreement:.3f}" + (f"/{quanta}q" if quanta is not None else "")


def _verdict_cell(row: dict[str, Any]) -> str:
    return row.get("verdict") or STATUSES[status(row)][1]


# Results table: header -> cell function, in reading order.
RESULT_COLUMNS = {
    "model": lambda r: r["model"],
    "recipe": lambda r: r["recipe"],
    "verdict": _verdict_cell,
    # A model scored by another metric shows it by name, its loss in the metric's units.
    "accuracy": lambda r: _num("{:.4f}")(r.get("accuracy")) if _is_accuracy(r)
    else f"{r['metric']} {_num('{:.4g}')(r.get('score'))}",
    "drop (pts)": lambda r: _num("{:+.2f}")(r.get("accuracy_drop_pts")) if _is_accuracy(r)
    else _num("{:+.4g}")(r.get("metric_loss")),
    "agree": lambda r: _num("{:.3f}")(r.get("float_agreement")),
    "SQNR dB": lambda r: _num("{:.1f}")(r.get("output_sqnr_db")),
    "KB": lambda r: _num("{:.1f}")(r["size_bytes"] / 1024 if r.get("size_bytes") else None),
    "size x": lambda r: _num("{:.2f}")(r.get("size_ratio")),
    "gzip x": lambda r: _num("{:.2f}")(r.get("gzip_ratio")),
    "sparsity": lambda r: _num("{:.3f}")(r.get("sparsity")),
    "peak KiB": lambda r: _num("{:.0f}")(r["peak_memory_bytes"] / 1024
                                         if r.get("peak_memory_bytes") else None),
    "latency x (95% CI)": _latency,
    "targets": lambda r: " ".join(filter(None, (_tflm(r), _parity(r)))),
    "note": lambda r: _short(r.get("error") or (r.get("tflm_error") if r.get("targets")
                                                else None) or _clusters_note(r)),
}
# The compact Markdown table leaves out what only the page needs.
COMPACT_COLUMNS = ("model", "recipe", "verdict", "accuracy", "drop (pts)", "agree", "size x",
                   "gzip x", "sparsity", "latency x (95% CI)", "targets", "note")


# Says what the target columns mean, under both tables.
TARGETS_LEGEND = ("targets: the tensor arena in KiB the file used on TensorFlow Lite Micro, "
                  "or \"no\" where it does not run there (* the recipe promises TFLM); then "
                  "LiteRT with XNNPACK vs its reference kernels: top-1 agreement/largest "
                  "output difference in quanta (first test rows).")


def results_frame(rows: list[dict[str, Any]], columns=tuple(RESULT_COLUMNS)) -> pd.DataFrame:
    """Display strings, one row per result, attention first."""
    records = [{name: RESULT_COLUMNS[name](row) for name in columns} for row in ordered(rows)]
    return pd.DataFrame(records, columns=list(columns))


def changes_frame(changes: list[dict[str, Any]], *, only_notable: bool = False) -> pd.DataFrame:
    """The change-vs-baseline entries as display strings, regressions first."""
    keep = [c for c in changes if not only_notable or c["status"] != "moved"]
    keep = sorted(keep, key=lambda c: (CHANGE_ORDER.index(c["status"]), c["model"],
                                       c["recipe"], c["metric"]))
    columns = ["model", "recipe", "metric", "baseline", "now", "change", "status", "note"]
    return pd.DataFrame([{k: str(c.get(k) or "") for k in columns} for c in keep],
                        columns=columns)


def slower_than_float(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose whole 95 % latency interval lies above the float model's time."""
    return [r for r in rows
            if r.get("latency_ratio") is not None and (r.get("latency_ratio_low") or 0) > 1.0]


def run_details(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, value) pairs of the run's metadata, nested dicts flattened."""
    items = []
    for key, value in sorted(meta.items()):
        if isinstance(value, dict):
            items += [(f"{key}.{k}", " ".join(map(str, v)) if isinstance(v, list) else str(v))
                      for k, v in sorted(value.items())]
        elif not isinstance(value, list):
            items.append((key, str(value)))
    return items
