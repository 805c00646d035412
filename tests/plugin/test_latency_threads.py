"""``latency_threads`` on a real model: the latency check times the recipe against float
at each thread count and finds its outputs there equal to one thread's (the rule itself,
failing, in tests/unit/test_thread_rows.py)."""

import json
import shutil

import pytest

from compressgate.gate.records import Status
from compressgate.gate.session import GateSession, Settings

pytestmark = pytest.mark.tf


@pytest.mark.timing
def test_the_latency_check_times_each_thread_count_and_compares_outputs(tiny_fixtures,
                                                                        tmp_path):
    fixtures = shutil.copytree(tiny_fixtures, tmp_path / "fixtures")
    manifest = json.loads((fixtures / "manifest.json").read_text())
    manifest["models"]["tiny_mlp"]["latency_threads"] = [1, 2]
    (fixtures / "manifest.json").write_text(json.dumps(manifest))
    session = GateSession(Settings(config=fixtures / "manifest.json",
                                   baselines=tmp_path / "baselines", reports=None))
    rows = {r.metric: r for r in session.run_check("tiny_mlp", "ptq_int8", "latency")
            .verdict.rows}
    ratio, outputs = rows["latency_ratio @2 threads"], rows["outputs @2 threads"]
    assert ratio.status == Status.INFO and ratio.measured > 0
    assert "recipe/float at 2 threads, 95 % CI" in ratio.note
    test_rows = len(session.runner.data("tiny_mlp").x_test)
    assert outputs.status == Status.PASS and outputs.measured == 0, outputs.note
    assert outputs.note == f"identical to 1 thread on all {test_rows} test rows"
    # The float file's own kernels are held to the same rule.
    float_rows = {r.metric: r for r in session.run_check("tiny_mlp", "float", "latency")
                  .verdict.rows}
    assert float_rows["outputs @2 threads"].status == Status.PASS
