"""Baseline files: ``<dir>/<model>/<recipe>.json``, one small document per model x recipe.

Schema-versioned, sorted keys, numbers rounded to a stable precision, so a change reads
well in ``git diff``. Written only by the explicit update flow: under a per-file lock,
merged with what is on disk (the latency check and the other checks may update the same
file from different xdist workers), and atomically replaced.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from compressgate.errors import BaselineError
from compressgate.report import write_text_atomic

SCHEMA = 1
REQUIRED = ("schema", "model", "recipe", "metrics", "environment")
# Metrics a baseline may record, with the precision they are stored at.
METRIC_DIGITS = {
    "accuracy": 6, "accuracy_drop_pts": 4, "size_bytes": 0, "gzip_bytes": 0, "sparsity": 6,
    "size_ratio": 4, "gzip_ratio": 4, "latency_ratio": 4, "latency_ratio_low": 4,
    "latency_ratio_high": 4, "metric_loss": 6, "peak_memory_bytes": 0,
}


def cpu_name() -> str:
    """The CPU model, which latency ratios depend on (ISA extensions, caches)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(versions: dict[str, str]) -> dict[str, str]:
    return {**versions, "python": platform.python_version(), "cpu": cpu_name()}


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

    def to_json(self) -> str:
        doc = {"schema": SCHEMA, "model": self.model, "recipe": self.recipe,
               "metrics": _round(self.metrics), "environment": self.environment}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    def differences(self, env: dict[str, str]) -> list[str]:
        """Environment keys whose recorded value differs from ``env``."""
        return sorted(k for k in env if self.environment.get(k) != env[k])


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
    if doc.get("schema") != SCHEMA:
        raise BaselineError(
            f"{path}: baseline schema {doc.get('schema')!r}, this compressgate reads {SCHEMA}"
        )
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise BaselineError(f"{path}: missing key {missing[0]!r}")
    if (doc["model"], doc["recipe"]) != (model, recipe):
        raise BaselineError(
            f"{path}: records {doc['model']} x {doc['recipe']}, expected {model} x {recipe}"
        )
    metrics, env = doc["metrics"], doc["environment"]
    if not isinstance(metrics, dict) or not isinstance(env, dict):
        raise BaselineError(f"{path}: 'metrics' and 'environment' must be objects")
    for name in METRIC_DIGITS:
        value = metrics.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BaselineError(f"{path}: metrics.{name} must be a number")
    return Baseline(path, model, recipe, metrics, env)


def update(path: Path, model: str, recipe: str, metrics: dict[str, Any],
           env: dict[str, str]) -> tuple[Baseline | None, Baseline]:
    """Merge ``metrics`` into the baseline at ``path`` and write it atomically.

    Returns (old, new). The lock serializes writers of the same file across processes;
    keys not given are kept, so the latency check and the other checks compose.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / f".{path.name}.lock")):
        try:
            old = load(path, model, recipe)
        except BaselineError:
            old = None  # the update flow replaces an unusable file
        merged = {**(old.metrics if old else {}), **metrics}
        if not merged.get("converted", True):
            merged = {k: merged[k] for k in ("converted", "error") if k in merged}
        new = Baseline(path, model, recipe, merged, env)
        if old is None or old.to_json() != new.to_json():
            write_text_atomic(path, new.to_json())
    return old, Baseline(path, model, recipe, json.loads(new.to_json())["metrics"], env)


def diff_rows(old: Baseline | None, new: Baseline) -> list[tuple[str, str, str, str]]:
    """(metric, old, new, change) for every metric that differs."""
    before = _round(old.metrics) if old else {}
    after = _round(new.metrics)
    rows = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        change = ""
        if isinstance(a, int | float) and isinstance(b, int | float) and a and \
                not isinstance(a, bool):
            change = f"{(b - a) / abs(a) * 100:+.2f} %"
        elif a is None:
            change = "new"
        rows.append((name, "-" if a is None else str(a), "-" if b is None else str(b), change))
    return rows


def diff_markdown(entries: list[tuple[str, str, list[tuple[str, str, str, str]]]]) -> str:
    """A readable diff of baseline updates: per file, metric, old -> new, change."""
    if not entries:
        return "# Baseline changes\n\nNo baseline changed.\n"
    lines = ["# Baseline changes", ""]
    for path, reason, rows in sorted(entries):
        lines += [f"## {path} ({reason})", "", "| metric | old | new | change |",
                  "|---|---|---|---|"]
        lines += [f"| {m} | {a} | {b} | {c} |" for m, a, b, c in rows]
        lines.append("")
    return "\n".join(lines)
