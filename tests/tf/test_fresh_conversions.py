"""Converting the same model twice, in two fresh processes with no result cache and the
recipes in opposite orders, gives byte-identical ``.tflite`` files (fine-tuned included)."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.tf
# Calibrated PTQ, QAT fine-tuning and pruning fine-tuning on the smallest fixture.
RECIPES = ["ptq_int8", "qat_int8", "prune"]


def convert(fixtures_dir, recipes):
    done = subprocess.run(
        [sys.executable, "-m", "compressgate", "reproducibility",
         "--config", str(fixtures_dir / "manifest.json"),
         "--models", "tabular_mlp", "--recipes", ",".join(recipes)],
        check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_conversions_in_separate_processes_are_byte_identical(fixtures_dir):
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda order: convert(fixtures_dir, order),
                                 [RECIPES, RECIPES[::-1]])
    assert set(first) == {f"tabular_mlp/{r}" for r in RECIPES}
    assert all(first.values()), first  # every recipe converted
    assert first == second
