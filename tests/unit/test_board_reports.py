"""The reports name the boards a result was measured on, and what each could not do."""

from compressgate.gate.records import Outcome
from compressgate.pipeline.record import BoardFigures, LatencyFigures, ResultRow
from compressgate.report import html, markdown
from compressgate.report.view import ReportInput, ReportRow


def report() -> ReportInput:
    measured = BoardFigures("pi5", "ci@pi5.local", "aarch64 asimd (board pi5)", "Cortex-A76",
                            "ai-edge-litert 2.3.0", peak_memory=40960,
                            latency=LatencyFigures(0.512), latency_vs_accepted=LatencyFigures(1.01),
                            rows=150, output_agreement=0.9933, output_max_quanta=2)
    gone = BoardFigures("jetson", "ci@jetson", error="board jetson (ci@jetson): unreachable: "
                        "ssh: connect to host jetson port 22: No route to host")
    row = ResultRow("m", "ptq_int8", True, boards=(measured, gone))
    return ReportInput([ReportRow(row, Outcome.PASS, "pass")], {"source": "gate"}, [])


def test_summary_md_and_index_html_list_each_board():
    text = markdown.render(report())
    assert "## On the boards" in text
    assert ("| m | ptq_int8 | pi5 (ci@pi5.local) | aarch64 asimd (board pi5) | 0.512x | "
            "1.010x | 40.0 | 0.9933, 2q |") in text
    assert "| m | ptq_int8 | jetson (ci@jetson) | not judged: board jetson (ci@jetson): " \
           "unreachable: ssh: connect to host jetson port 22: No route to host |" in text
    page = html.render(report())
    assert 'id="boards"' in page and "aarch64 asimd (board pi5)" in page
    assert "No route to host" in page


def test_no_boards_no_section():
    plain = ReportInput([ReportRow(ResultRow("m", "ptq_int8", True), Outcome.PASS, "pass")],
                        {"source": "gate"}, [])
    assert "On the boards" not in markdown.render(plain)
    assert 'id="boards"' not in html.render(plain)
