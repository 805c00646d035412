"""``index.html``: one self-contained page (no network; plots embedded as base64 PNG).

Sections, in reading order: a status banner, what needs attention, the results table,
the change against the baselines, the plots, the run's details. Every string that comes
from a user (model and recipe names, errors, verdicts, metadata) is HTML-escaped before
it reaches a table or the page.
"""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

from compressgate.report import plots, view
from compressgate.report.view import ReportInput

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #24292f; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #57606a; margin: 0 0 12px; }
.banner { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.chip { padding: 4px 12px; border-radius: 14px; font-weight: 600; }
.s-fail, .s-missing { background: #ffebe9; color: #a40e26; }
.s-not-converted { background: #fff1e5; color: #953800; }
.s-stale { background: #fff8c5; color: #7d4e00; }
.s-pass { background: #dafbe1; color: #116329; }
.s-measured, .s-unsupported { background: #eaeef2; color: #57606a; }
.c-regression, .c-missing, .c-unusable { background: #ffebe9; color: #a40e26; }
.c-improved, .c-updated { background: #ddf4ff; color: #0550ae; }
.c-moved { color: #57606a; }
span.tag { padding: 1px 8px; border-radius: 10px; font-weight: 600; white-space: nowrap; }
table.grid { border-collapse: collapse; font-size: 13px; }
table.grid th { background: #f6f8fa; text-align: left; position: sticky; top: 0; }
table.grid th, table.grid td { border: 1px solid #d0d7de; padding: 3px 8px; }
table.grid td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.grid td:last-child { white-space: normal; min-width: 220px; max-width: 420px; }
table.grid td:nth-child(-n+3), table.grid td:last-child, table.grid td:has(.tag) {
  text-align: left; }
table.grid tr:has(.s-fail) td, table.grid tr:has(.s-missing) td,
table.grid tr:has(.c-regression) td { background: #fff5f5; }
.note { color: #57606a; font-style: italic; }
.attention li { margin: 2px 0; } .ok { color: #116329; font-weight: 600; }
figure { margin: 12px 0 24px; } figcaption { color: #57606a; font-size: 13px; }
img.plot { max-width: 100%; border: 1px solid #d0d7de; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { color: #57606a; } dd { margin: 0; }
"""


def _slug(text: str) -> str:
    return text.replace(" ", "-")


def _tag(kind: str, value: str, label: str) -> str:
    return f'<span class="tag {kind}-{_slug(value)}">{escape(label)}</span>'


def _table(frame: pd.DataFrame, markup: dict[str, list[str]]) -> str:
    """``frame`` (display strings) as an HTML table: every cell escaped, except the
    columns in ``markup``, given as ready HTML (built with ``_tag``, which escapes)."""
    cells = frame.map(escape)
    for column, values in markup.items():
        cells[column] = values
    return cells.to_html(index=False, escape=False, border=0, classes="grid",
                         na_rep="")


def _banner(report: ReportInput) -> str:
    chips = [f'<span class="chip s-{_slug(s)}">{n} {escape(s.label)}</span>'
             for s, n in view.counts(report)]
    return f'<div class="banner" id="banner">{"".join(chips)}</div>'


def _attention(report: ReportInput) -> str:
    items = view.attention(report)
    if not items:
        text = "every gated result passes." if report.has_verdicts else \
            "every result converted (this run gives no verdicts)."
        return f'<p class="ok" id="attention">Nothing needs attention: {text}</p>'
    lis = "".join(
        f"<li>{_tag('s', s, s.label)} <b>{escape(m)} x {escape(r)}</b>"
        f" &mdash; {escape(why)}</li>" for s, m, r, why in items)
    return f'<ul class="attention" id="attention">{lis}</ul>'


def _results(report: ReportInput) -> str:
    if not report.rows:
        skipped = view.not_run(report)
        return ('<p class="note">No result was recorded in this run.'
                f"{' ' + escape(skipped) if skipped else ''}</p>")
    rows = view.ordered(report.rows)
    frame = view.results_frame(rows)
    tags = [_tag("s", r.status, v) for r, v in zip(rows, frame["verdict"], strict=True)]
    table = _table(frame, {"verdict": tags})
    intro = "" if report.has_verdicts else (
        '<p class="note">No verdicts: <code>compressgate run</code> measures; the gate '
        "(<code>python3 -m tox -e gate</code>) judges.</p>")
    slower = view.slower_than_float(rows)
    outro = f'<p class="note" id="targets-legend">{escape(view.TARGETS_LEGEND)}</p>'
    outro += "" if not slower else (
        '<p class="note">Slower than float at one thread (measured, not tuned away): '
        + escape(", ".join(view.slower_text(r) for r in slower if r.latency)) + ".</p>")
    skipped = view.not_run(report)
    if skipped:
        outro += f'<p class="note" id="not-run">{escape(skipped)}</p>'
    return intro + table + outro


def _changes(report: ReportInput) -> str:
    if report.changes is None:
        return ('<p class="note" id="no-baseline">No baseline information in this run: '
                f"{escape(report.source)} does not compare against baselines. The gate "
                "(<code>python3 -m tox -e gate</code>) does.</p>")
    if not report.changes:
        return '<p class="note">Nothing moved against the baselines.</p>'
    frame = view.changes_frame(report.changes)
    legend = ('<p class="note">Only figures that differ from the baseline. regression / '
              "improved: beyond the tolerance, as the gate judged it (improved means a stale "
              "baseline); moved: within the tolerance; updated: this run rewrote the "
              "baseline.</p>")
    return legend + _table(frame, {"status": [_tag("c", v, v) for v in frame["status"]]})


def _plot(plot: plots.Plot) -> str:
    if plot.png is None:
        return (f'<h3>{escape(plot.title)}</h3><p class="note" id="plot-{plot.key}">'
                f"{escape(plot.caption)}</p>")
    data = base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><h3>{escape(plot.title)}</h3><img class="plot" id="plot-{plot.key}" '
            f'alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(plot.caption)}</figcaption></figure>")


def _not_judged(report: ReportInput) -> str:
    groups = view.not_judged(report)
    if not groups:
        return ""
    lis = "".join(f"<li>{escape(what)} — {len(cases)} results: {escape(', '.join(cases))}</li>"
                  for what, cases in groups)
    return (f'<h2 id="not-judged">Not judged on this machine '
            f'({sum(len(c) for _, c in groups)})</h2><ul class="attention">{lis}</ul>')


def _boards(report: ReportInput) -> str:
    frame = view.boards_frame(report.rows)
    if frame is None:
        return ""
    return (f'<h2 id="boards">On the boards</h2>{_table(frame, {})}'
            f'<p class="sub">{escape(view.BOARDS_LEGEND)}</p>')


def _details(report: ReportInput) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>"
                    for k, v in view.run_details(report.meta))
    return f"<dl>{items}</dl>"


def render(report: ReportInput) -> str:
    """The whole page as one HTML string."""
    figures = "".join(_plot(p) for p in plots.all_plots([r.result for r in report.rows]))
    title = f"compressgate: {view.headline(report)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>compressgate report</h1>
<p class="sub">{escape(report.source)} &middot; {escape(str(report.meta.get("created", "")))}</p>
{"".join(f'<p class="sub">{escape(line)}</p>' for line in view.machine_classes(report.meta))}
{_banner(report)}
<h2>Needs attention</h2>
{_attention(report)}
{_not_judged(report)}
<h2 id="results">Results (model x recipe)</h2>
{_results(report)}
{_boards(report)}
<h2 id="changes">Change against baselines</h2>
{_changes(report)}
<h2 id="plots">Plots</h2>
{figures}
<h2>Run details</h2>
{_details(report)}
</body></html>
"""
