"""Write what a run measured: ``summary.json``, ``summary.csv``, ``summary.md``, ``index.html``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from compressgate.files import write_text_atomic
from compressgate.report.view import Missing, ReportInput, ReportRow

SUMMARY_SCHEMA = 1

def write_summary(out: Path, rows: list[ReportRow], meta: dict[str, Any], *,
                  changes: list[dict[str, Any]] | None = None,
                  missing: list[Missing] | None = None) -> list[Path]:
    """Write the run's rows as JSON and CSV, the compact ``summary.md`` and the
    self-contained ``index.html`` under ``out``.

    ``changes`` is the change against the baselines (None: this run has no baseline
    information); ``missing`` lists the results the run was meant to have but has not.
    """
    from compressgate.report import html, markdown

    missing = missing or []
    flat = [row.to_dict() for row in rows]
    doc = {"schema": SUMMARY_SCHEMA, **meta, "results": flat}
    if missing:
        doc["missing"] = [asdict(m) for m in missing]
    paths = [out / "summary.json", out / "summary.csv", out / "summary.md", out / "index.html"]
    write_text_atomic(paths[0], json.dumps(doc, indent=2, sort_keys=True) + "\n")
    frame = pd.DataFrame(flat)
    for column in frame.columns:
        frame[column] = frame[column].map(
            lambda v: " ".join(v) if isinstance(v, list) and all(isinstance(x, str) for x in v)
            else json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v)
    write_text_atomic(paths[1], frame.to_csv(index=False))
    report = ReportInput(rows, meta, changes, missing)
    write_text_atomic(paths[2], markdown.render(report))
    write_text_atomic(paths[3], html.render(report))
    return paths
