"""A recipe whose float fine-tune alone loses more than its promise says so in its
failure note: "fine-tuning lost X pts before quantization" (issue 24.6)."""

import pytest
import tiny

from compressgate.gate import rules
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf


def test_pruning_that_ruins_the_float_model_is_named_in_the_failure(tmp_path):
    tiny.build(tmp_path)
    runner = Runner(config.load(tmp_path / "manifest.json").specs,
                    ResultCache(tmp_path / "cache"), isolate=False)
    # 99 % of the hidden weights gone, every layer, at a learning rate that cannot recover.
    ruin = get_recipe("prune_int8").with_overrides({
        "name": "prune99_int8", "finetune": {"epochs": 1, "learning_rate": 1e-9},
        "prune": {"initial_sparsity": 0.99, "final_sparsity": 0.99, "frequency": 1,
                  "skip_first_and_last": False, "recalibrate_batchnorm": False}})
    row = runner.row(tiny.MODEL, ruin)
    assert row.converted and row.finetune_drop_pts > 2.0
    verdict = rules.check_accuracy(row, ruin.promise)
    assert verdict.failed
    assert (f"fine-tuning lost {row.finetune_drop_pts:.2f} pts before quantization"
            in verdict.rows[0].note)
    # QAT alone has no float fine-tune to blame.
    assert runner.row(tiny.MODEL, get_recipe("qat_int8").with_overrides(
        {"finetune": {"epochs": 1}})).finetune_drop_pts is None
