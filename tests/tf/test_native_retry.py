"""A fine-tune whose worker dies of a native signal runs once more in a fresh worker
with TensorFlow's oneDNN optimizations off, and still gives a result (issue 24.6)."""

from functools import partial

import pytest
import tiny

from compressgate.backends.faults import FaultyBackend
from compressgate.pipeline import isolation
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf


def test_a_planted_segfault_in_a_qat_worker_is_retried_with_onednn_off(tmp_path,
                                                                        monkeypatch):
    monkeypatch.delenv(isolation.ONEDNN_ENV, raising=False)
    # A worker of its own: one an earlier test started keeps that test's environment.
    monkeypatch.setattr(isolation, "_shared", None)
    tiny.build(tmp_path)
    recipe = get_recipe("qat_int8").with_overrides({"name": "qat_crashing",
                                                    "finetune": {"epochs": 1}})
    # Segfaults in any worker whose TensorFlow would run with oneDNN's optimizations on.
    runner = Runner(config.load(tmp_path / "manifest.json").specs,
                    ResultCache(tmp_path / "cache"),
                    backend_factory=partial(FaultyBackend, {recipe.name: "segfault_onednn"}))
    try:
        row = runner.row(tiny.MODEL, recipe)
    finally:
        isolation.shared().close()
    assert row.converted, row.error
    assert row.accuracy > 0.8 and (row.input_dtype, row.output_dtype) == ("int8", "int8")
    assert row.fallback == ("worker crashed: signal SIGSEGV; computed again in a fresh "
                            "worker with TF_ENABLE_ONEDNN_OPTS=0")
