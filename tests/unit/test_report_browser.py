"""index.html as a person sees it: rendered by headless Chromium (skipped without it)."""

import re
import shutil
import subprocess

import pytest
from PIL import Image
from test_report_pages import make_row, not_converted

from compressgate.gate.records import Outcome
from compressgate.report.summary import write_summary
from compressgate.report.view import Missing, ReportRow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                             "the README's test command installs it)")

# Appended to a copy of the page: after load, report what the browser made of it.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const rows = [...document.querySelectorAll("table")].map(t => t.tBodies[0].rows.length);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = `images=${images.length} decoded=${decoded} rows=${rows.join(",")} ` +
    `width=${document.documentElement.scrollWidth}`;
  document.body.appendChild(out);
});
</script>"""


def chromium(*args, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def page(tmp_path):
    rows = [ReportRow(make_row(recipe="float", accuracy=0.96, size=4000, latency_ratio=None),
                      Outcome.PASS, "pass"),
            ReportRow(make_row(recipe="ptq_int8"), Outcome.PASS, "pass"),
            ReportRow(make_row(recipe="prune", accuracy=0.90), Outcome.FAIL, "FAIL: accuracy"),
            ReportRow(not_converted(), Outcome.UNSUPPORTED, "unsupported (xfail)")]
    changes = [{"model": "digits", "recipe": "prune", "metric": "accuracy", "baseline": "0.95",
                "now": "0.9", "change": "-5.00 pts", "status": "regression", "note": ""}]
    write_summary(tmp_path / "reports", rows, {"source": "pytest gate"}, changes=changes,
                  missing=[Missing("digits", "prune_int8", "conversion: no result")])
    return tmp_path / "reports" / "index.html"


def test_chromium_renders_tables_and_decodes_every_plot(page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--dump-dom", probed.as_uri(), tmp_path=tmp_path).stdout
    probe = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    assert probe, "the page did not finish loading in Chromium"
    found = dict(item.split("=") for item in probe.group(1).split())
    assert (found["images"], found["decoded"]) == ("3", "3")
    assert found["rows"] == "4,1"  # results (4 rows), change against baselines (1 row)
    assert int(found["width"]) <= 1280  # readable without scrolling sideways


def test_screenshot_shows_the_failure_in_colour(page, tmp_path):
    shot = tmp_path / "shot.png"
    chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri(),
             tmp_path=tmp_path)
    image = Image.open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert len(colours) > 1000  # text, tables and plots, not a blank page
    assert (0xFF, 0xEB, 0xE9) in colours  # the red background of the FAIL and missing tags
    assert (0xDA, 0xFB, 0xE1) in colours  # the green background of the pass tags
