"""``compressgate diagnose`` names equalization (dfq_int8) for a real int8 collapse caused
by channel-range imbalance (tests/imbalanced.py), end to end through the runner."""

import imbalanced
import pytest

from compressgate.diagnosis.collect import collect
from compressgate.diagnosis.report import markdown
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config

pytestmark = pytest.mark.tf
MODEL = imbalanced.MODEL


def test_diagnose_names_equalization_for_imbalanced_channels(tmp_path):
    fixtures = imbalanced.build(tmp_path)
    runner = Runner(config.load(fixtures / "manifest.json").specs, ResultCache(tmp_path / "c"))
    diag = collect(runner, MODEL, "ptq_int8")
    assert diag.problems == ()
    assert diag.row.accuracy_drop_pts > 2.0  # int8 loses more than the promise
    top, ratio = diag.imbalances[0]
    assert top == "hidden" and ratio > 100
    assert diag.advice.recipe == "dfq_int8"
    assert "hidden" in diag.advice.why and "cross-layer equalization" in diag.advice.why
    assert "## Recovery recipe to try\n\ntry dfq_int8: " in markdown(diag)
