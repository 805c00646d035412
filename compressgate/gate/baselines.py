"""Baseline files: ``<dir>/<model>/<recipe>.json`` and the accepted ``<recipe>.tflite``.

A baseline is what a team accepted for one model x recipe:

- ``metrics``: machine-independent figures (accuracy or the model's metric, sizes,
  sparsity, the accepted file's sha256);
- ``inputs``: digests of the model, data and recipe they came from, so a changed model
  reads as "your model changed", not as nondeterminism;
- ``machines``: machine-bound figures (latency ratio to float, peak memory) per machine
  class (``compressgate.measure.machine``), each with the fingerprint it was recorded on; one
  file may hold several classes, and a figure is compared only within its class;
- the accepted ``.tflite`` beside the JSON, which every run measures side by side with
  the new file (latency, memory, outputs) on whatever machine it runs.

Schema-versioned, sorted keys, numbers rounded to a stable precision, so a change reads
well in ``git diff``. Written only by the explicit update flow: under a per-file lock,
merged with what is on disk (checks of one model x recipe may run in different xdist
workers), the artifact first and the JSON last, each atomically replaced.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from compressgate.errors import BaselineError
from compressgate.files import write_bytes_atomic, write_text_atomic
from compressgate.measure import memory, targets
from compressgate.measure.machine import machine_class, this_machine
from compressgate.pipeline.record import ResultRow

# The update mode that records what a baseline lacks, and moves nothing it records.
UPDATE_MISSING = "--compressgate-update=missing"

SCHEMA = 2
READS = (1, 2)
REQUIRED = ("schema", "model", "recipe", "metrics", "environment")

# The figures a baseline stores: the set this store owns, and the gate, the session and
# the reports read.
# Judged against the baseline by the baseline check (a custom metric replaces accuracy).
JUDGED = ("accuracy", "size_bytes", "gzip_bytes", "sparsity")
# The accepted file's sha256 (byte identity on the recording build).
ARTIFACT_FIGURE = "tflite_sha256"
# Peak resident bytes of load + allocate + invoke (``compressgate.measure.memory``).
MEMORY_FIGURE = memory.METRIC
# TFLM's tensor arena in bytes (``compressgate.measure.targets``): machine-independent,
# recorded with the tflite-micro version that planned it.
ARENA_FIGURE = targets.ARENA_FIGURE
TFLM_VERSION = "tflm_version"
LATENCY_FIGURES = ("latency_ratio", "latency_ratio_low", "latency_ratio_high")
# A latency record made from several processes (``compressgate.gate.envelope``) also
# holds their median ratios; ``LATENCY_FIGURES`` are then their median, lowest and
# highest, which an older compressgate reads as a record from one process.
PROCESS_FIGURE = "latency_process_ratios"
# Figures that depend on the machine: stored per machine class.
MACHINE_FIGURES = (*LATENCY_FIGURES, MEMORY_FIGURE)
# Numeric figures a baseline may record, with the precision they are stored at.
METRIC_DIGITS = {
    "accuracy": 6, "accuracy_drop_pts": 4, "size_bytes": 0, "gzip_bytes": 0, "sparsity": 6,
    "size_ratio": 4, "gzip_ratio": 4, "latency_ratio": 4, "latency_ratio_low": 4,
    "latency_ratio_high": 4, "metric_loss": 6, MEMORY_FIGURE: 0, ARENA_FIGURE: 0,
}


def judged_keys(row: ResultRow) -> tuple[str, ...]:
    """The judged figures a baseline stores for ``row``'s model (its metric under its
    name)."""
    return (row.metric, *JUDGED[1:])


def judged_figures(row: ResultRow) -> dict[str, Any]:
    """``row``'s judged figures under their baseline names (a custom metric's score as its
    name)."""
    quality = row.accuracy if row.is_accuracy else row.score
    return {row.metric: quality, **{k: getattr(row, k) for k in JUDGED[1:]}}


def recorded_metrics(row: ResultRow) -> dict[str, Any]:
    """The machine-independent figures a baseline records for a result row."""
    metrics: dict[str, Any] = {"converted": row.converted}
    if row.error is not None:
        metrics["error"] = row.error
    if not row.converted:
        return metrics
    metrics.update(judged_figures(row))
    metrics.update({"size_ratio": row.size_ratio, "gzip_ratio": row.gzip_ratio})
    if row.accuracy_drop_pts is not None:
        metrics["accuracy_drop_pts"] = row.accuracy_drop_pts
    else:
        metrics["metric_loss"] = row.metric_loss
    if row.tflite_sha256 is not None:
        metrics[ARTIFACT_FIGURE] = row.tflite_sha256
    return metrics


def environment(versions: dict[str, str]) -> dict[str, str]:
    """Library versions, Python and the machine class a figure was produced with."""
    return {**versions, "python": platform.python_version(),
            "machine": machine_class(this_machine())}


def path_for(directory: Path, model: str, recipe: str) -> Path:
    return directory / model / f"{recipe}.json"


def _round(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in metrics.items():
        digits = METRIC_DIGITS.get(name)
        if isinstance(value, float) and digits is not None:
            value = round(value) if digits == 0 else round(value, digits)
        out[name] = value
    return out


@dataclass(frozen=True)
class Baseline:
    path: Path
    model: str
    recipe: str
    metrics: dict[str, Any]
    environment: dict[str, str]
    inputs: dict[str, str] = field(default_factory=dict)
    # machine class -> machine-bound figures (+ "fingerprint" and "versions").
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "schema": SCHEMA, "model": self.model, "recipe": self.recipe,
            "metrics": _round(self.metrics), "environment": self.environment}
        if self.inputs:
            doc["inputs"] = self.inputs
        if self.machines:
            doc["machines"] = {k: _round(v) for k, v in self.machines.items()}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @property
    def artifact_path(self) -> Path:
        return self.path.with_suffix(".tflite")

    def machine(self, cls: str) -> dict[str, Any]:
        """The figures recorded for machine class ``cls`` ({} when none)."""
        return self.machines.get(cls, {})

    def accepted(self) -> tuple[bytes | None, str]:
        """(the accepted ``.tflite``, why not) — ``None`` when absent or when it is not
        the file whose sha256 the baseline records."""
        path = self.artifact_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, f"accepted artifact {path.name} absent"
        recorded = self.metrics.get(ARTIFACT_FIGURE)
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            return None, (f"accepted artifact {path.name} is not the file its baseline "
                          f"records (sha256 {recorded[:12]}): replaced by hand?")
        return data, ""

    def build_changes(self, env: dict[str, str]) -> tuple[str, ...]:
        """What differs between ``env`` and the build that recorded this baseline."""
        return environment_changes(self.environment, env)


def environment_changes(then: dict[str, str], now: dict[str, str]) -> tuple[str, ...]:
    """What differs between the build that recorded a figure (``then``) and this one:
    library versions, Python, machine class, as "name old (now new)"."""
    return tuple(f"{'machine class' if k == 'machine' else k} {then.get(k, 'unknown')} "
                 f"(now {now[k]})" for k in sorted(now) if then.get(k) != now[k])


def _from_schema_1(metrics: dict[str, Any], env: dict[str, str]) -> tuple[dict, dict, dict]:
    """Schema 1 kept latency and memory among the metrics under a brand-name CPU; they
    are kept under an "unclassified" machine entry that matches no machine class."""
    machine_bound = {k: metrics[k] for k in MACHINE_FIGURES if k in metrics}
    rest = {k: v for k, v in metrics.items()
            if k not in MACHINE_FIGURES and k != "latency_cpu"}
    env = {k: v for k, v in env.items() if k != "cpu"}
    cpu = metrics.get("latency_cpu") or "unknown CPU"
    return rest, env, ({f"unclassified ({cpu}, schema 1)": machine_bound}
                       if machine_bound else {})


def load(path: Path, model: str, recipe: str) -> Baseline | None:
    """The baseline at ``path``; ``None`` when absent; ``BaselineError`` when unusable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BaselineError(f"{path}: unreadable baseline ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: malformed JSON at line {exc.lineno} ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise BaselineError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") not in READS:
        raise BaselineError(
            f"{path}: baseline schema {doc.get('schema')!r}, this compressgate reads "
            f"{' and '.join(map(str, READS))}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise BaselineError(f"{path}: missing key {missing[0]!r}")
    if (doc["model"], doc["recipe"]) != (model, recipe):
        raise BaselineError(
            f"{path}: records {doc['model']} x {doc['recipe']}, expected {model} x {recipe}"
        )
    metrics, env = doc["metrics"], doc["environment"]
    inputs, machines = doc.get("inputs", {}), doc.get("machines", {})
    for key, value in (("metrics", metrics), ("environment", env), ("inputs", inputs),
                       ("machines", machines)):
        if not isinstance(value, dict):
            raise BaselineError(f"{path}: '{key}' must be an object")
    _check_numbers(path, "metrics", metrics)
    if doc["schema"] == 1:
        metrics, env, machines = _from_schema_1(metrics, env)
    for cls, figures in machines.items():
        if not isinstance(figures, dict):
            raise BaselineError(f"{path}: machines.{cls} must be an object")
        _check_numbers(path, f"machines.{cls}", figures)
        _check_processes(path, f"machines.{cls}", figures.get(PROCESS_FIGURE, [1.0]))
    return Baseline(path, model, recipe, metrics, env, inputs, machines)


def _check_numbers(path: Path, where: str, figures: dict[str, Any]) -> None:
    for name in METRIC_DIGITS:
        value = figures.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BaselineError(f"{path}: {where}.{name} must be a number")


def _check_processes(path: Path, where: str, ratios: Any) -> None:
    if not isinstance(ratios, list) or not ratios or not all(
            isinstance(r, int | float) and not isinstance(r, bool) and r > 0 for r in ratios):
        raise BaselineError(f"{path}: {where}.{PROCESS_FIGURE} must be a non-empty list "
                            "of positive numbers")


@dataclass(frozen=True)
class Change:
    """What one check asks the update flow to record (None: leave that part as it is)."""

    metrics: dict[str, Any] | None = None
    inputs: dict[str, str] | None = None
    # Machine-bound figures of this machine's class.
    machine: dict[str, Any] | None = None
    artifact: bytes | None = None
    # The metrics are this build's whole record (the baseline check's): only then does
    # the baseline's ``environment`` (the build whose bytes ``tflite_sha256`` holds) move
    # to this build. Figures added to another build's record leave it as it is.
    records_build: bool = False
    # Machine-bound figures of other classes (boards measured over SSH), each with the
    # "fingerprint" and "versions" of the machine that measured them.
    classes: dict[str, dict[str, Any]] | None = None


def update(path: Path, model: str, recipe: str, change: Change | dict[str, Any],
           env: dict[str, str]) -> tuple[Baseline | None, Baseline]:
    """Merge ``change`` (a plain dict: metrics only) into the baseline at ``path`` and
    write it atomically.

    Returns (old, new). The lock serializes writers of the same file across processes;
    parts not given are kept, so the latency check and the other checks compose. The
    accepted artifact is written before the JSON that records its sha256.
    """
    if isinstance(change, dict):
        change = Change(metrics=change, records_build=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / f".{path.name}.lock")):
        try:
            old = load(path, model, recipe)
        except BaselineError:
            old = None  # the update flow replaces an unusable file
        metrics = {**(old.metrics if old else {}), **(change.metrics or {})}
        inputs = change.inputs if change.inputs is not None else (old.inputs if old else {})
        machines = {k: dict(v) for k, v in (old.machines if old else {}).items()}
        if change.machine:
            cls = env["machine"]
            machines[cls] = {**machines.get(cls, {}), **change.machine,
                             "fingerprint": this_machine(),
                             "versions": {k: v for k, v in env.items() if k != "machine"}}
        for cls, figures in (change.classes or {}).items():
            machines[cls] = {**machines.get(cls, {}), **figures}
        if not metrics.get("converted", True):
            metrics = {k: metrics[k] for k in ("converted", "error") if k in metrics}
            machines = {}
        built = env if old is None or change.records_build else old.environment
        new = Baseline(path, model, recipe, metrics, built, inputs, machines)
        if change.artifact is not None and metrics.get("converted", True):
            if not new.artifact_path.exists() or \
                    new.artifact_path.read_bytes() != change.artifact:
                write_bytes_atomic(new.artifact_path, change.artifact)
        elif not metrics.get("converted", True):
            new.artifact_path.unlink(missing_ok=True)
        if old is None or old.to_json() != new.to_json():
            write_text_atomic(path, new.to_json())
    doc = json.loads(new.to_json())
    return old, Baseline(path, model, recipe, doc["metrics"], built, inputs,
                         doc.get("machines", {}))


def _flat(baseline: Baseline | None) -> dict[str, Any]:
    """Every recorded figure under one name: metrics as they are, machine-bound figures
    as ``name [class]``, input digests as ``inputs.name``."""
    if baseline is None:
        return {}
    out = dict(_round(baseline.metrics))
    out.update({f"inputs.{k}": v[:12] for k, v in baseline.inputs.items()})
    for cls, figures in baseline.machines.items():
        out.update({f"{k} [{cls}]": v for k, v in _round(figures).items()
                    if k in METRIC_DIGITS})
        if PROCESS_FIGURE in figures:
            out[f"{PROCESS_FIGURE} [{cls}]"] = " ".join(map(str, figures[PROCESS_FIGURE]))
    return out


def diff_rows(old: Baseline | None, new: Baseline) -> list[tuple[str, str, str, str]]:
    """(figure, old, new, change) for every recorded figure that differs."""
    before, after = _flat(old), _flat(new)
    rows = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        change = ""
        points = _points(name)
        if points and _number(a) and _number(b):
            change = f"{(b - a) * points:+.2f} pts"  # accuracy moves in points everywhere
        elif _number(a) and _number(b) and a:
            change = f"{(b - a) / abs(a) * 100:+.2f} %"
        elif a is None:
            change = "new"
        elif b is None:
            change = "removed"
        elif isinstance(b, int | float) and not isinstance(b, bool) and a == 0:
            change = f"+{b}" if b > 0 else str(b)  # no percentage of zero
        rows.append((name, "-" if a is None else str(a), "-" if b is None else str(b), change))
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _points(name: str) -> float:
    """How many points one unit of the figure is: 1 for ``*_pts``, 100 for an accuracy
    or an agreement (a fraction), 0 for figures not counted in points."""
    # A machine-bound figure ("machines.CLASS.keras_agreement") ends as its own name does.
    if name.endswith("_pts"):
        return 1.0
    return 100.0 if name.endswith(("accuracy", "agreement")) else 0.0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def diff_markdown(entries: list[tuple[str, str, list[tuple[str, str, str, str]]]],
                  written_on: dict[str, str] | None = None) -> str:
    """A readable diff of baseline updates: per file, metric, old -> new, change.

    ``written_on`` maps a file to the machine class whose run wrote it: the diff then
    opens with one line per class, its figures and files (what a CI job summary shows
    when a new runner class is recorded)."""
    if not entries:
        return "# Baseline changes\n\nNo baseline changed.\n"
    lines = ["# Baseline changes", ""]
    if written_on:
        tally: dict[str, list[int]] = {}
        for path, _, rows in entries:
            counts = tally.setdefault(written_on.get(path, "unknown"), [0, 0])
            counts[0], counts[1] = counts[0] + len(rows), counts[1] + 1
        lines += [f"Written on machine class {cls}: {_count(figures, 'figure')} in "
                  f"{_count(files, 'file')}." for cls, (figures, files) in sorted(tally.items())]
        lines.append("")
    for path, reason, rows in sorted(entries):
        lines += [f"## {path} ({reason})", "", "| metric | old | new | change |",
                  "|---|---|---|---|"]
        lines += [f"| {m} | {a} | {b} | {c} |" for m, a, b, c in rows]
        lines.append("")
    return "\n".join(lines)
