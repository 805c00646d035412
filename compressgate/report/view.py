"""What the human-facing reports (``index.html``, ``summary.md``) show, format-neutral.

Every row gets a status from its verdict; rows are ordered so that what needs attention
(failures, missing results, unexpected conversion failures) comes first. Cells are plain
strings here; each writer escapes them for its own format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from compressgate.gate.records import Outcome
from compressgate.pipeline.record import ResultRow

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
class ReportRow:
    """A result as the reports show it: its figures and, from a gate run, its verdict
    (``outcome`` None: measured without one, by ``compressgate run``)."""

    result: ResultRow
    outcome: Outcome | None = None
    # The verdict in words ("FAIL: accuracy, size"), why it failed, what was not judged.
    verdict: str = ""
    reasons: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def status(self) -> Outcome:
        if self.outcome is not None:
            return self.outcome
        return Outcome.MEASURED if self.result.converted else Outcome.NOT_CONVERTED

    def to_dict(self) -> dict[str, Any]:
        """The flat row of ``summary.json``: the result's keys, then the verdict's."""
        doc = self.result.to_dict()
        if self.outcome is not None:
            doc.update({"verdict": self.verdict, "reasons": list(self.reasons),
                        "skipped": list(self.skipped)})
        return doc


@dataclass(frozen=True)
class ReportInput:
    """Everything a human-facing report is made from."""

    rows: list[ReportRow]
    meta: dict[str, Any]
    # None: this run has no baseline information (``compressgate run``).
    changes: list[dict[str, Any]] | None = None
    missing: list[Missing] = field(default_factory=list)

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "compressgate run"))

    @property
    def has_verdicts(self) -> bool:
        return any(row.outcome is not None for row in self.rows)


def ordered(rows: list[ReportRow]) -> list[ReportRow]:
    """Rows needing attention first; otherwise in the order given (model by model)."""
    return sorted(rows, key=lambda r: r.status.rank)


def counts(report: ReportInput) -> list[tuple[Outcome, int]]:
    """(status, how many) in reading order, zero counts left out."""
    tally: dict[Outcome, int] = {}
    for row in report.rows:
        tally[row.status] = tally.get(row.status, 0) + 1
    missing = [m for m in report.missing if m.ran]
    if missing:
        tally[Outcome.MISSING] = tally.get(Outcome.MISSING, 0) + len(missing)
    return sorted(tally.items(), key=lambda item: item[0].rank)


def headline(report: ReportInput) -> str:
    parts = [f"{n} {s.label}" for s, n in counts(report)]
    return ", ".join(parts) or "no results"


def attention(report: ReportInput) -> list[tuple[Outcome, str, str, str]]:
    """(status, model, recipe, why) for every result a person must look at."""
    items = [(r.status, r.result.model, r.result.recipe, _why(r, report.changes or []))
             for r in ordered(report.rows) if r.status.needs_attention]
    items += [(Outcome.MISSING, m.model, m.recipe, m.reason) for m in report.missing if m.ran]
    return sorted(items, key=lambda item: (item[0].rank, item[1], item[2]))


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


def _why(row: ReportRow, changes: list[dict[str, Any]]) -> str:
    """The verdict, the error, and what regressed against the baseline."""
    moved = [_change_text(c) for c in changes
             if (c["model"], c["recipe"]) == row.result.key
             and c["status"] in ("regression", "missing", "unusable")]
    parts = (row.verdict, row.result.error or "", "; ".join(row.reasons), "; ".join(moved))
    return " — ".join(part for part in parts if part)


def not_judged(report: ReportInput) -> list[tuple[str, list[str]]]:
    """Comparisons this run could not make, grouped: (what and why, [model x recipe])."""
    groups: dict[str, list[str]] = {}
    for row in report.rows:
        for what in row.skipped:
            groups.setdefault(what, []).append(f"{row.result.model} x {row.result.recipe}")
    return sorted(groups.items())


def _num(pattern: str):
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return pattern.format(value)
    return fmt


def _latency(row: ResultRow) -> str:
    if row.latency is None:
        return ""
    ratio, low, high = row.latency.ratio, row.latency.low, row.latency.high
    return f"{ratio:.2f} ({low:.2f}-{high:.2f})" if low is not None and high is not None \
        else f"{ratio:.2f}"


def _short(text: str, limit: int = 80) -> str:
    # The table stays scannable; the full reason is under "Needs attention".
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _clusters_note(row: ResultRow) -> str:
    """Clustered recipes: distinct values per output channel of the weights (a note, not a
    column: only these rows have it, and the table must stay narrow)."""
    if row.clusters is None or row.clusters.max is None:
        return ""
    return (f"{row.clusters.max} values per channel (max; mean over tensors "
            f"{row.clusters.mean:.1f})")


def _tflm(row: ResultRow) -> str:
    """TFLM: the arena KiB where the file runs there, "no" where it does not (why is under
    the check), "" when not measured; a promised target is starred."""
    if row.targets is None:
        return ""
    loads, arena = row.targets.tflm_loads, row.targets.tflm_arena_bytes
    cell = "" if loads is None else "no" if not loads else \
        f"{arena / 1024:.1f}" if arena else "yes"
    return f"{cell}*" if cell and row.targets.tflm else cell


def _parity(row: ResultRow) -> str:
    """XNNPACK vs reference kernels: top-1 agreement, largest difference in quanta."""
    if row.targets is None or row.targets.kernel_agreement is None:
        return ""
    quanta = row.targets.kernel_max_quanta
    return f"{row.targets.kernel_agreement:.3f}" + (f"/{quanta}q" if quanta is not None else "")


def off_xnnpack(row: ResultRow) -> str:
    """The ops XNNPACK left to LiteRT's built-in kernels ("" when none, or not measured):
    a note, not a column, so the table stays within the page."""
    if row.coverage is None or row.coverage.all_delegated:
        return ""
    return "off XNNPACK: " + ", ".join(f"{op} {n}" for op, n in row.coverage.builtin.items())


def slower_text(row: ResultRow) -> str:
    """A result slower than float: its ratio, and the ops off XNNPACK that may explain it."""
    assert row.latency is not None
    off = off_xnnpack(row)
    return f"{row.model} x {row.recipe} ({row.latency.ratio:.2f}x" + (f"; {off})" if off
                                                                        else ")")


def _dfq_note(row: ResultRow) -> str:
    """Data-free quantization: the pairs it equalized, or why none."""
    if row.dfq is None:
        return ""
    return row.dfq.note or f"dfq: {len(row.dfq.pairs)} pairs equalized"


def _note(row: ResultRow) -> str:
    """The error, else why TFLM refused the file, else the clustering, else what
    data-free quantization equalized, else the ops off XNNPACK; and a native-crash
    fallback first (the figures are from that second run)."""
    tflm_error = row.targets.tflm_error if row.targets and row.targets.declared else None
    note = (row.error or tflm_error or _clusters_note(row) or _dfq_note(row)
            or off_xnnpack(row))
    if row.fallback:
        crash = row.fallback.split(";")[0].removeprefix("worker crashed: ")
        note = f"oneDNN off: retried after {crash}" + (f"; {note}" if note else "")
    return _short(note)


def _kib(value: int | None) -> float | None:
    return value / 1024 if value else None


# Results table: header -> cell function of the result, in reading order.
RESULT_COLUMNS = {
    "model": lambda r: r.model,
    "recipe": lambda r: r.recipe,
    # A model scored by another metric shows it by name, its loss in the metric's units.
    "accuracy": lambda r: _num("{:.4f}")(r.accuracy) if r.is_accuracy
    else f"{r.metric} {_num('{:.4g}')(r.score)}",
    "drop (pts)": lambda r: _num("{:+.2f}")(r.accuracy_drop_pts) if r.is_accuracy
    else _num("{:+.4g}")(r.metric_loss),
    "agree": lambda r: _num("{:.3f}")(r.float_agreement),
    "SQNR dB": lambda r: _num("{:.1f}")(r.output_sqnr_db),
    "KB": lambda r: _num("{:.1f}")(_kib(r.size_bytes)),
    "size x": lambda r: _num("{:.2f}")(r.size_ratio),
    "gzip x": lambda r: _num("{:.2f}")(r.gzip_ratio),
    "sparsity": lambda r: _num("{:.3f}")(r.sparsity),
    "peak KiB": lambda r: _num("{:.0f}")(_kib(r.peak_memory)),
    "latency x (95% CI)": _latency,
    "targets": lambda r: " ".join(filter(None, (_tflm(r), _parity(r)))),
    "note": _note,
}
# The verdict column reads the verdict, the others the result.
VERDICT_COLUMN = "verdict"
COLUMNS = ("model", "recipe", VERDICT_COLUMN, *tuple(RESULT_COLUMNS)[2:])
# The compact Markdown table leaves out what only the page needs.
COMPACT_COLUMNS = ("model", "recipe", "verdict", "accuracy", "drop (pts)", "agree", "size x",
                   "gzip x", "sparsity", "latency x (95% CI)", "targets", "note")


# Says what the target columns mean, under both tables.
TARGETS_LEGEND = ("targets: the tensor arena in KiB the file used on TensorFlow Lite Micro, "
                  "or \"no\" where it does not run there (* the recipe promises TFLM); then "
                  "LiteRT with XNNPACK vs its reference kernels: top-1 agreement/largest "
                  "output difference in quanta (first test rows).")


def _cell(name: str, row: ReportRow) -> str:
    if name == VERDICT_COLUMN:
        return row.verdict or row.status.label
    return RESULT_COLUMNS[name](row.result)


def results_frame(rows: list[ReportRow], columns: tuple[str, ...] = COLUMNS) -> pd.DataFrame:
    """Display strings, one row per result, attention first."""
    records = [{name: _cell(name, row) for name in columns} for row in ordered(rows)]
    return pd.DataFrame(records, columns=list(columns))


BOARD_COLUMNS = ("model", "recipe", "board", "machine class", "x float", "x accepted",
                 "peak KiB", "outputs vs CI")


BOARDS_LEGEND = ("Measured on each board over SSH: x float and x accepted are the new "
                 "file's latency ratios timed there side by side; outputs vs CI is the "
                 "top-1 agreement (and largest difference in quanta) of the board's outputs "
                 "with this machine's on the test split.")


def boards_frame(rows: list[ReportRow]) -> pd.DataFrame | None:
    """One line per result and board (``[boards.NAME]``): where it was measured, its
    latency ratios, peak memory and output parity there, or why nothing (None: no
    result was measured on a board)."""
    def ratio(figures) -> str:
        return "-" if figures is None else f"{figures.ratio:.3f}x"

    records = []
    for row in ordered(rows):
        for b in row.result.boards:
            where = f"{b.board} ({b.ssh})"
            if b.error is not None:
                records.append([row.result.model, row.result.recipe, where,
                                f"not judged: {b.error}", "-", "-", "-", "-"])
                continue
            quanta = "" if b.output_max_quanta is None else f", {b.output_max_quanta}q"
            records.append([row.result.model, row.result.recipe, where, b.machine_class or "-",
                            ratio(b.latency), ratio(b.latency_vs_accepted),
                            "-" if b.peak_memory is None else f"{b.peak_memory / 1024:.1f}",
                            "-" if b.output_agreement is None
                            else f"{b.output_agreement:.4f}{quanta}"])
    return pd.DataFrame(records, columns=list(BOARD_COLUMNS)) if records else None


def changes_frame(changes: list[dict[str, Any]], *, only_notable: bool = False) -> pd.DataFrame:
    """The change-vs-baseline entries as display strings, regressions first."""
    keep = [c for c in changes if not only_notable or c["status"] != "moved"]
    keep = sorted(keep, key=lambda c: (CHANGE_ORDER.index(c["status"]), c["model"],
                                       c["recipe"], c["metric"]))
    columns = ["model", "recipe", "metric", "baseline", "now", "change", "status", "note"]
    return pd.DataFrame([{k: str(c.get(k) or "") for k in columns} for c in keep],
                        columns=columns)


def slower_than_float(rows: list[ReportRow]) -> list[ResultRow]:
    """Results whose whole 95 % latency interval lies above the float model's time."""
    return [r.result for r in rows
            if r.result.latency is not None and (r.result.latency.low or 0) > 1.0]


def machine_classes(meta: dict[str, Any]) -> list[str]:
    """``"class: shard K/N (cases)"`` per machine class, when a merge joined shards of
    more than one class (empty otherwise: the run details name the one class)."""
    judged = meta.get("judged_on") or {}
    if len(judged) < 2:
        return []
    return [f"machine class {cls} judged {where}" for cls, where in judged.items()]


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
