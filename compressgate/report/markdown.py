"""``summary.md``: the compact Markdown report for a CI job summary or a PR comment.

Verdicts first: a headline with the counts, what needs attention, the notable changes
against the baselines, then one compact table with failures on top. The plots and the
full change table are in ``index.html``.
"""

from __future__ import annotations

import pandas as pd

from compressgate.report import view
from compressgate.report.view import ReportInput


def _cell(value: object) -> str:
    # Markdown tables: no pipes or newlines in a cell; no raw HTML from user strings. A
    # backslash before "<" keeps a tag from being one and reads as plain text in the
    # file itself (HTML entities would show as "-&gt;" in a job summary's source).
    return (str(value).replace("\\", "\\\\").replace("<", "\\<").replace("|", "\\|")
            .replace("\n", " "))


def table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def render(report: ReportInput) -> str:
    lines = [f"# compressgate: {view.headline(report)}", "",
             f"_{_cell(report.source)}, {_cell(report.meta.get('created', ''))}; "
             "plots and the full tables: `index.html`_", ""]
    lines += [f"- {_cell(line)}" for line in view.machine_classes(report.meta)]
    lines += [""] if view.machine_classes(report.meta) else []
    items = view.attention(report)
    lines.append("## Needs attention")
    lines.append("")
    if items:
        lines += [f"- **{s.label}** {_cell(m)} x {_cell(r)}: {_cell(why)}"
                  for s, m, r, why in items]
    else:
        lines.append("Nothing: every gated result passes." if report.has_verdicts
                     else "Nothing: every result converted (no verdicts in this run).")
    lines.append("")
    groups = view.not_judged(report)
    if groups:
        lines.append(f"## Not judged on this machine ({sum(len(c) for _, c in groups)})")
        lines.append("")
        lines += [f"- {_cell(what)} — {len(cases)} results: {_cell(', '.join(cases))}"
                  for what, cases in groups]
        lines.append("")
    lines.append("## Change against baselines")
    lines.append("")
    if report.changes is None:
        lines.append(f"No baseline information: {_cell(report.source)} does not compare "
                     "against baselines (the gate does).")
    else:
        notable = view.changes_frame(report.changes, only_notable=True)
        moved = len(report.changes) - len(notable)
        if len(notable):
            lines.append(table(notable))
        else:
            lines.append("No regression, improvement or missing baseline.")
        if moved:
            lines.append(f"{moved} more figures moved within tolerance (see `index.html`).")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    if report.rows:
        lines.append(table(view.results_frame(report.rows,
                                                     view.COMPACT_COLUMNS)))
        lines += [_cell(view.TARGETS_LEGEND), ""]
    else:
        lines.append("No result was recorded in this run.")
    boards = view.boards_frame(report.rows)
    if boards is not None:
        lines += ["## On the boards", "", table(boards), _cell(view.BOARDS_LEGEND), ""]
    skipped = view.not_run(report)
    if skipped:
        lines += [_cell(skipped), ""]
    slower = view.slower_than_float(report.rows)
    if slower:
        lines.append("Slower than float at one thread (measured, not tuned away): "
                     + ", ".join(_cell(view.slower_text(r)) for r in slower if r.latency))
        lines.append("")
    lines += ["<details><summary>Run details</summary>", ""]
    lines += [f"- {_cell(k)}: {_cell(v)}" for k, v in view.run_details(report.meta)]
    lines += ["", "</details>", ""]
    return "\n".join(lines)
