"""index.html and summary.md from hand-made rows (no TensorFlow)."""

import base64
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

from compressgate.gate.records import CheckRecord, Outcome
from compressgate.gate.session import Settings
from compressgate.measure.litert import class_accuracy
from compressgate.measure.machine import machine_class, this_machine
from compressgate.pipeline.record import ResultRow
from compressgate.report import plots
from compressgate.report.gate_run import write_reports
from compressgate.report.summary import write_summary
from compressgate.report.view import Missing, ReportRow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_row(model="digits", recipe="ptq_int8", accuracy=0.95, size=1000, **extra):
    row = {
        "model": model, "recipe": recipe, "converted": True, "error": None,
        "accuracy": accuracy, "float_accuracy": 0.96,
        "accuracy_drop_pts": round((0.96 - accuracy) * 100, 4), "size_bytes": size,
        "gzip_bytes": size - 100, "size_ratio": 4000 / size, "gzip_ratio": 3900 / size,
        "sparsity": 0.0, "float_agreement": 0.99, "output_sqnr_db": 30.0,
        "latency_ratio": 1.2, "latency_ratio_low": 1.1, "latency_ratio_high": 1.3,
        "class_accuracy": {"0": 1.0, "1": 0.9}, "float_class_accuracy": {"0": 1.0, "1": 0.92},
    }
    return ResultRow.from_dict(row | extra)


def not_converted(model="digits", recipe="qat_int8", error="tfmot cannot quantize LSTM"):
    return ResultRow(model, recipe, converted=False, error=error)


def measured(*results):
    """Rows as ``compressgate run`` reports them: figures, no verdict."""
    return [ReportRow(r) for r in results]


def images(page):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_page_is_self_contained_with_tables_and_three_plots(tmp_path):
    rows = measured(make_row(recipe="float", accuracy=0.96, size=4000, latency_ratio=None,
                             class_accuracy={"0": 1.0, "1": 0.92}),
                    make_row(), make_row(recipe="ptq_float16", accuracy=0.96, size=2000))
    write_summary(tmp_path, rows, {"source": "compressgate run", "created": "now"})
    page = (tmp_path / "index.html").read_text()
    pngs = images(page)
    assert len(pngs) == 3 and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from a network
    assert page.count('<table class="dataframe grid"') == 1  # results; no baseline table
    assert "No baseline information in this run" in page
    assert "1.20 (1.10-1.30)" in page  # the latency ratio with its interval


def test_user_strings_are_escaped_in_page_and_markdown(tmp_path):
    evil = "<script>alert(1)</script>|$x$"
    rows = measured(make_row(model=evil, recipe="float", latency_ratio=None),
                    make_row(model=evil),
                    not_converted(model=evil, error="bad <b>op</b>\nsecond line"))
    write_summary(tmp_path, rows, {"source": "pytest <gate>"})
    page = (tmp_path / "index.html").read_text()
    assert "<script>" not in page and "<b>op</b>" not in page and "<gate>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(images(page)) == 3  # a "$" in a name does not break the plots
    md = (tmp_path / "summary.md").read_text()
    # Every "<" from a user string is escaped: no tag (the page's own <details> stay).
    assert not re.search(r"(?<!\\)<(script|/script|b>|gate)", md)
    assert "\\<script>alert(1)\\</script>\\|$x$" in md  # no pipe splits a cell
    assert "&lt;" not in md and "&gt;" not in md  # readable in the file itself


def test_failures_and_missing_come_first_and_the_rest_is_still_written(tmp_path):
    rows = [ReportRow(make_row(recipe="ptq_int8"), Outcome.PASS, "pass"),
            ReportRow(make_row(recipe="prune"), Outcome.FAIL, "FAIL: accuracy, baseline"),
            ReportRow(make_row(recipe="float", latency_ratio=None), Outcome.PASS, "pass"),
            ReportRow(not_converted(recipe="qat_int8"), Outcome.UNSUPPORTED,
                      "unsupported (xfail)")]
    missing = [Missing("digits", "prune_2by4", "conversion: LiteRT cannot load the model")]
    write_summary(tmp_path, rows, {"source": "pytest gate"}, changes=[], missing=missing)
    page = (tmp_path / "index.html").read_text()
    banner = re.search(r'<div class="banner".*?</div>', page).group(0)
    assert re.findall(r">(\d+ [^<]+)</span>", banner) == [
        "1 FAIL", "1 missing", "2 pass", "1 unsupported"]
    attention = re.search(r'<ul class="attention".*?</ul>', page, re.S).group(0)
    assert attention.index("prune</b>") < attention.index("prune_2by4</b>")
    assert "LiteRT cannot load the model" in attention
    table = page[page.index('id="results"'):page.index('id="changes"')]
    recipes = re.findall(r"<td>digits</td>\s*<td>([^<]+)</td>", table)
    assert recipes == ["prune", "ptq_int8", "float", "qat_int8"]
    assert 'class="tag s-fail">FAIL: accuracy, baseline<' in table
    assert "Nothing moved against the baselines" in page
    assert len(images(page)) == 3
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("# compressgate: 1 FAIL, 1 missing, 2 pass, 1 unsupported\n")
    assert md.index("**FAIL** digits x prune") < md.index("**missing** digits x prune_2by4")
    assert md.index("## Needs attention") < md.index("## Results")
    json_doc = json.loads((tmp_path / "summary.json").read_text())
    assert json_doc["missing"] == [{"model": "digits", "recipe": "prune_2by4",
                                    "reason": "conversion: LiteRT cannot load the model",
                                    "ran": True}]


def test_nothing_to_plot_gives_notes_not_errors(tmp_path):
    write_summary(tmp_path, measured(not_converted()), {"source": "compressgate run"},
                  missing=[Missing("m", "r", "no result")])
    page = (tmp_path / "index.html").read_text()
    assert images(page) == []
    assert "No converted result to plot." in page
    assert "Latency was not measured in this run." in page
    assert "These results carry no per-class accuracy." in page
    write_summary(tmp_path, [], {"source": "pytest gate"}, changes=[])
    assert "No result was recorded in this run." in (tmp_path / "index.html").read_text()
    assert "# compressgate: no results" in (tmp_path / "summary.md").read_text()


def test_csv_keeps_per_class_accuracy_as_json(tmp_path):
    write_summary(tmp_path, measured(make_row()), {})
    csv = (tmp_path / "summary.csv").read_text()
    assert '"{""0"": 1.0, ""1"": 0.9}"' in csv


def test_csv_writes_nested_fields_as_json_and_op_lists_as_text(tmp_path):
    row = make_row(op_versions=[["CONV_2D", 3], ["FULLY_CONNECTED", 12]],
                   ops=["CONV_2D", "FULLY_CONNECTED"])
    write_summary(tmp_path, measured(row), {})
    frame = pd.read_csv(tmp_path / "summary.csv")
    assert json.loads(frame["op_versions"][0]) == [["CONV_2D", 3], ["FULLY_CONNECTED", 12]]
    assert frame["ops"][0] == "CONV_2D FULLY_CONNECTED"


def test_pareto_front():
    # (size, accuracy): b is smaller and as accurate as a; c is larger but more accurate.
    points = [(10.0, 0.9), (5.0, 0.9), (20.0, 0.95), (25.0, 0.94), (5.0, 0.8)]
    assert plots.pareto_front(points) == [1, 2]


def test_class_plot_only_where_a_class_moved():
    still = make_row(class_accuracy={"0": 1.0, "1": 0.92})
    assert plots.class_accuracy([still]).png is None
    assert plots.class_accuracy([still]).caption == \
        "No class's accuracy moved against float."
    assert plots.class_accuracy([still, make_row(recipe="prune")]).png.startswith(
        PNG_MAGIC)
    assert plots._class_moves([still, make_row(recipe="prune")]) == {
        "digits": (["prune"], ["0", "1"], [[0.0, -2.0]])}


def test_class_accuracy_counts_each_true_class():
    labels = np.array([0, 0, 1, 1, 1, 2])
    top1 = (0, 1, 1, 1, 0, 0)
    assert class_accuracy(top1, labels) == {"0": 0.5, "1": 2 / 3, "2": 0.0}


def record(model, recipe, check, failed=False, **extra):
    return CheckRecord(model, recipe, check, failed, **extra)


def test_gate_page_shows_change_against_baselines_and_missing_cases(tmp_path):
    baselines = tmp_path / "baselines"
    (baselines / "digits").mkdir(parents=True)
    metrics = {"converted": True, "accuracy": 0.96, "size_bytes": 1000, "gzip_bytes": 900,
               "sparsity": 0.0}
    here = machine_class(this_machine())
    (baselines / "digits" / "ptq_int8.json").write_text(json.dumps({
        "schema": 2, "model": "digits", "recipe": "ptq_int8", "metrics": metrics,
        "environment": {}, "machines": {here: {"latency_ratio": 1.0},
                                        "another class": {"latency_ratio": 9.0}}}))
    records = [
        record("digits", "ptq_int8", "conversion", row=make_row(accuracy=0.94)),
        record("digits", "ptq_int8", "baseline", failed=True, regressions=["accuracy"]),
        record("digits", "prune", "conversion", row=make_row(recipe="prune")),
        record("digits", "prune_int8", "conversion", failed=True,
               message="compressgate: LiteRT cannot load the model"),
    ]
    cases = [("digits", r) for r in ("ptq_int8", "prune", "prune_int8", "qat_int8")]
    reports = tmp_path / "reports"
    written = write_reports(records, Settings(baselines=baselines, reports=reports,
                                              command="tox -e gate --"), cases)
    assert reports / "index.html" in written and reports / "summary.md" in written
    page = (reports / "index.html").read_text()
    changes = page[page.index('id="changes"'):page.index('id="plots"')]
    assert re.search(r"<td>accuracy</td>\s*<td>0.96</td>\s*<td>0.94</td>\s*<td>-2.00 pts</td>"
                     r'\s*<td><span class="tag c-regression">regression', changes)
    # The latency ratio is compared with this machine class's record only.
    assert re.search(r"<td>latency_ratio</td>\s*<td>1.0</td>\s*<td>1.2</td>", changes)
    assert "9.0" not in changes
    assert "no baseline; create it with: tox -e gate -- --compressgate-update=missing" \
        in changes
    assert changes.index("c-regression") < changes.index("c-missing") \
        < changes.index("c-moved")
    attention = re.search(r'<ul class="attention".*?</ul>', page, re.S).group(0)
    assert "prune_int8</b> &mdash; conversion: compressgate: LiteRT cannot load" in attention
    assert "ptq_int8</b> &mdash; FAIL: baseline — accuracy 0.96 -&gt; 0.94 (-2.00 pts)" \
        in attention
    assert "qat_int8" not in attention  # not run at all (e.g. deselected): one note
    assert "Not run in this session (deselected, or the run stopped early): 1 results: " \
           "digits x qat_int8." in page
    md = (reports / "summary.md").read_text()
    notable = md[md.index("## Change against baselines"):md.index("## Results")]
    assert "| digits | ptq_int8 | accuracy | 0.96 | 0.94 | -2.00 pts | regression |" in notable
    assert "latency_ratio" not in notable  # moved within tolerance: only in the page
    assert "1 more figures moved within tolerance" in notable


def test_spread_labels_keep_order_and_gap_and_stay_near_their_points():
    from compressgate.report.plots import spread_labels

    assert spread_labels([1.0, 5.0], gap=1.0) == [1.0, 5.0]  # room: labels at their points
    ys = [96.5, 96.6, 96.55, 96.58]  # four recipes of about one accuracy
    placed = spread_labels(ys, gap=0.2)
    order = sorted(range(4), key=lambda i: ys[i])
    heights = [placed[i] for i in order]
    assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(heights))
    # The stack is centred on its points' mean: no label drifts off to one side.
    assert sum(placed) / 4 == pytest.approx(sum(ys) / 4)
    # A far point is not pulled into the stack.
    assert spread_labels([*ys, 99.0], gap=0.2)[-1] == 99.0


def test_the_ops_off_xnnpack_show_in_the_note_and_beside_a_result_slower_than_float(tmp_path):
    off = {"xnnpack_ops": {}, "builtin_ops": {"CONV_2D": 3, "QUANTIZE": 1},
           "delegate_partitions": 0, "subgraphs": 1, "builtin_nodes": [0, 1, 2, 3]}
    rows = measured(make_row(recipe="ptq_int16x8", latency_ratio=26.0, latency_ratio_low=25.0,
                             latency_ratio_high=27.0, **off),
                    make_row(recipe="ptq_float16", latency_ratio=0.9, latency_ratio_low=0.8,
                             latency_ratio_high=1.0, **off | {
                                 "xnnpack_ops": {"CONV_2D": 3}, "builtin_ops": {}}))
    write_summary(tmp_path, rows, {"source": "compressgate run"})
    page = (tmp_path / "index.html").read_text()
    summary = (tmp_path / "summary.md").read_text()
    for text in (page, summary):
        assert "digits x ptq_int16x8 (26.00x; off XNNPACK: CONV_2D 3, QUANTIZE 1)" in text
        assert text.count("off XNNPACK") == 2  # the int16x8 note and sentence only
    results = json.loads((tmp_path / "summary.json").read_text())["results"]
    assert [r["builtin_ops"] for r in results] == [{"CONV_2D": 3, "QUANTIZE": 1}, {}]
