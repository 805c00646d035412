"""The typed records a gate check produces, from the rule to the report.

A rule returns a ``Verdict`` (``Row``s with a ``Status``); the session adds the baseline
``Update`` it wrote (a ``CheckOutcome``); the plugin turns each into one ``CheckRecord``,
which travels to the controller as JSON (``to_dict`` / ``from_dict``: pytest-xdist
passes only plain data) and is what the terminal summary and every report read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from compressgate.pipeline.record import BoardFigures, LatencyFigures, ResultRow


class Status(StrEnum):
    """A row's outcome. ``SKIPPED``: a comparison that protects nothing here (counted
    and listed in every report); ``INFO``: shown for people, replaced by another
    comparison (e.g. bytes by outputs)."""

    PASS = "pass"
    FAIL = "fail"
    REGRESSION = "regression"
    IMPROVED = "improved"
    SKIPPED = "skipped"
    INFO = "info"

    @property
    def failed(self) -> bool:
        return self in (Status.FAIL, Status.REGRESSION)


class Outcome(StrEnum):
    """A result's outcome in the reports, in reading order (what needs attention first):
    from its checks' records, or ``MEASURED`` / ``NOT_CONVERTED`` without a verdict
    (``compressgate run``)."""

    FAIL = "fail"
    MISSING = "missing"
    NOT_CONVERTED = "not converted"
    STALE = "stale"
    MEASURED = "measured"
    PASS = "pass"
    UNSUPPORTED = "unsupported"

    @property
    def rank(self) -> int:
        return list(Outcome).index(self)

    @property
    def label(self) -> str:
        return {Outcome.FAIL: "FAIL", Outcome.STALE: "stale baseline"}.get(self, self.value)

    @property
    def needs_attention(self) -> bool:
        return self in (Outcome.FAIL, Outcome.MISSING, Outcome.NOT_CONVERTED)


def fmt(value: Any) -> str:
    """A figure as the tables show it (4 significant digits, "-" for none)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


# A row's display label -> its stable key, where the two differ (a row whose label is a
# figure's name, ``size_ratio``, ``accuracy``, ..., is keyed by it).
LABEL_KEYS = {
    "float ops": "float_ops",
    "min runtime": "min_runtime",
    "accuracy drop (pts)": "accuracy_drop_pts",
    "top-1 agreement with Keras": "keras_agreement",
    "distinct values per channel (max)": "clusters_max",
    "accuracy (recorded)": "accepted_accuracy",
    "agreement with accepted": "agreement_with_accepted",
    "output difference vs accepted": "output_difference_vs_accepted",
    "peak memory vs accepted": "peak_memory_vs_accepted",
    "ops off XNNPACK": "ops_off_xnnpack",
    "faster than float": "faster_than_float",
    "time vs accepted": "latency_vs_accepted",
    "target measurement": "targets_error",
    "kernel agreement": "kernel_agreement",
    "runs on TFLM": "tflm_loads",
    "TFLM vs reference kernels (quanta)": "tflm_max_quanta",
    "TFLM vs reference kernels": "tflm_max_diff",
    "TFLM accuracy": "tflm_accuracy",
    "arena KiB": "tflm_arena_kib",
}


@dataclass(frozen=True)
class Row:
    """One metric of a verdict: what was measured, against what, and the outcome;
    ``metric`` is the label people read, ``key`` the name tools and code use."""

    metric: str
    measured: Any
    expected: Any
    tolerance: str
    status: Status
    note: str = ""
    # Failed or skipped only because the baseline lacks this figure (update=missing adds it).
    missing: bool = False
    # How much of the allowed move is left: 1 at the accepted value, 0 at the limit,
    # negative beyond it (a latency beyond it may still pass if not significant).
    headroom: float | None = None
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if not self.key:
            object.__setattr__(self, "key", LABEL_KEYS.get(self.metric, self.metric))

    def reason(self) -> str:
        """One line for a report: metric, accepted -> now, the limit, why."""
        text = f"{self.metric} {fmt(self.expected)} -> {fmt(self.measured)}"
        text += f" ({self.tolerance})" if self.tolerance not in ("", "-") else ""
        return text + (f": {self.note}" if self.note else "")

    def settled(self, status: Status, note: str) -> Row:
        """This row with another status and note (and no headroom: the limit it was
        measured against no longer applies)."""
        return dataclasses.replace(self, status=status, note=note, headroom=None)


@dataclass(frozen=True)
class Verdict:
    model: str
    recipe: str
    check: str
    rows: tuple[Row, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        return any(r.status.failed for r in self.rows)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.status.failed]

    @property
    def stale(self) -> list[Row]:
        return [r for r in self.rows if r.status == Status.IMPROVED]

    @property
    def skipped(self) -> list[Row]:
        return [r for r in self.rows if r.status == Status.SKIPPED]

    def with_notes(self, *notes: str) -> Verdict:
        return dataclasses.replace(self, notes=(*self.notes, *notes))

    def with_rows(self, rows: tuple[Row, ...]) -> Verdict:
        return dataclasses.replace(self, rows=rows)

    def table(self) -> str:
        """A small fixed-width table: metric, measured, expected, tolerance, verdict."""
        header = ("metric", "measured", "baseline/limit", "tolerance", "verdict")
        lines = [header] + [(r.metric, fmt(r.measured), fmt(r.expected), r.tolerance,
                             r.status + (f" ({r.note})" if r.note else "")) for r in self.rows]
        widths = [max(len(str(line[i])) for line in lines) for i in range(4)]
        out = [f"{self.model} x {self.recipe}: {self.check}"]
        for line in lines:
            cells = [str(c).ljust(w) for c, w in zip(line[:4], widths, strict=True)]
            out.append("  " + "  ".join([*cells, str(line[4])]))
        out.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(out)


@dataclass(frozen=True)
class Update:
    """A baseline file the update flow wrote: its path, why, and (figure, old, new,
    change) for every figure that moved."""

    path: str
    reason: str
    diff: list[tuple[str, str, str, str]]


@dataclass(frozen=True)
class CheckRecord:
    """What one gate check tells the reports; the unit the plugin sends between
    processes (``to_dict``/``from_dict``, plain JSON)."""

    model: str
    recipe: str
    check: str
    failed: bool
    message: str = ""
    # The keys of the rows that are stale or regressed (``Row.key``).
    stale: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    # Why it failed, and what it could not judge here.
    reasons: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # Headroom to the limit per row key (see ``Row.headroom``).
    headroom: dict[str, float] = field(default_factory=dict)
    update: Update | None = None
    # The result's summary row (conversion checks) and this run's latency (latency checks).
    row: ResultRow | None = None
    latency: LatencyFigures | None = None
    # What the boards measured (device checks).
    boards: tuple[BoardFigures, ...] = ()
    # A declared-unsupported recipe failing as expected (strict xfail).
    expected: bool = False
    # The override that would accept a broken promise (see gate.accept).
    accept: dict[str, Any] | None = None
    # The machine class whose records judged the machine-bound figures; set by a merge
    # (its shards may run on different classes), empty in one run (the run's class).
    machine_class: str = ""

    @classmethod
    def of(cls, verdict: Verdict, *, message: str, refused: str | None = None,
           update: Update | None = None, **extra: Any) -> CheckRecord:
        return cls(
            verdict.model, verdict.recipe, verdict.check,
            failed=verdict.failed or refused is not None, message=message,
            stale=[r.key for r in verdict.stale],
            regressions=[r.key for r in verdict.regressions],
            reasons=[r.reason() for r in verdict.regressions]
            + ([f"refused to record the baseline: {refused}"] if refused else []),
            skipped=[f"{r.metric}: {r.note}" for r in verdict.skipped],
            headroom={r.key: round(r.headroom, 4) for r in verdict.rows
                      if r.headroom is not None},
            update=update, **extra)

    @classmethod
    def error(cls, model: str, recipe: str, check: str, message: str) -> CheckRecord:
        """A check that raised instead of giving a verdict: it failed."""
        return cls(model, recipe, check, failed=True, message=message)

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.recipe

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["update"] = None if self.update is None else \
            [self.update.path, self.update.reason, self.update.diff]
        doc["row"] = None if self.row is None else self.row.to_dict()
        doc["latency"] = None if self.latency is None else self.latency.to_dict()
        doc["boards"] = [board.to_dict() for board in self.boards]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CheckRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        if values.get("update"):
            path, reason, diff = values["update"]
            values["update"] = Update(path, reason, [tuple(d) for d in diff])
        else:
            values["update"] = None
        if values.get("row") is not None:
            values["row"] = ResultRow.from_dict(values["row"])
        if values.get("latency") is not None:
            values["latency"] = LatencyFigures.from_dict(values["latency"])
        values["boards"] = tuple(BoardFigures.from_dict(b) for b in values.get("boards") or ())
        return cls(**values)


@dataclass(frozen=True)
class CheckOutcome:
    """What a session's check returns: its verdict, the baseline update it wrote (or why
    it refused to), and the override that would accept a broken promise."""

    verdict: Verdict
    update: Update | None = None
    refused: str | None = None
    # The override that would accept a broken promise (model, recipe, config, promise).
    accept: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.verdict.failed or self.refused is not None

    def message(self) -> str:
        text = self.verdict.table()
        if self.refused:
            text += f"\n  refused to record the baseline: {self.refused}"
        return text

    def record(self, **extra) -> CheckRecord:
        """The typed record the reports read (``extra``: the row, this run's latency)."""
        return CheckRecord.of(self.verdict, message=self.message(), refused=self.refused,
                              update=self.update, accept=self.accept, **extra)
