"""Write what a run measured for people: ``summary.json``, ``summary.csv``, ``summary.md``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

SUMMARY_SCHEMA = 1

# Columns of the Markdown table, in reading order, with their headers.
_TABLE = {
    "model": "model", "recipe": "recipe", "verdict": "verdict", "converted": "ok",
    "accuracy": "accuracy", "accuracy_drop_pts": "drop (pts)",
    "float_agreement": "agree", "output_sqnr_db": "SQNR dB", "size_bytes": "bytes",
    "size_ratio": "size x", "gzip_ratio": "gzip x", "sparsity": "sparsity",
    "input_dtype": "in", "output_dtype": "out", "latency_ratio": "latency x",
    "error": "note",
}


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = [c for c in _TABLE if any(c in row for row in rows)]
    frame = pd.DataFrame(rows).reindex(columns=columns).rename(columns=_TABLE)
    fmt = {"bytes": "{:.0f}", "accuracy": "{:.4f}", "agree": "{:.3f}", "SQNR dB": "{:.1f}",
           "drop (pts)": "{:+.2f}", "size x": "{:.2f}", "gzip x": "{:.2f}",
           "sparsity": "{:.3f}", "latency x": "{:.3f}"}
    for column, pattern in fmt.items():
        if column not in frame:
            continue
        frame[column] = frame[column].map(
            lambda v, p=pattern: "" if v is None or pd.isna(v) else p.format(v))
    frame = frame.astype(object).fillna("").astype(str)
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(v.replace("|", "/") for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_summary(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """Write the run's rows as JSON, CSV and a Markdown table under ``out``."""
    doc = {"schema": SUMMARY_SCHEMA, **meta, "results": rows}
    paths = [out / "summary.json", out / "summary.csv", out / "summary.md"]
    write_text_atomic(paths[0], json.dumps(doc, indent=2, sort_keys=True) + "\n")
    frame = pd.DataFrame(rows)
    for column in ("ops", "float_ops", "kept_float"):
        if column in frame:
            frame[column] = frame[column].map(
                lambda v: " ".join(v) if isinstance(v, list) else v)
    write_text_atomic(paths[1], frame.to_csv(index=False))
    lines = ["# compressgate summary", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(meta.items()) if not isinstance(v, dict)]
    lines += ["", markdown_table(rows)]
    # Slower means the whole 95 % interval of the ratio lies above 1.
    slower = [r for r in rows if (r.get("latency_ratio_low") or 0) > 1.0]
    if slower:
        lines.append("Slower than float at one thread (measured, not tuned away): "
                     + ", ".join(f"{r['model']} x {r['recipe']} ({r['latency_ratio']:.2f}x)"
                                 for r in slower) + "\n")
    write_text_atomic(paths[2], "\n".join(lines))
    return paths
