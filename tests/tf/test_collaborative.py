"""Collaborative optimization on a real conversion (tests/tiny.py's MLP): prune-preserving
QAT keeps the pruned zeros in the int8 file, and clustering (float, int8 PTQ and
cluster-preserving QAT) leaves at most N distinct values per output channel."""

import pytest
import tiny

from compressgate.gate import rules
from compressgate.measure import clusters, flatbuffer
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import get_recipe

pytestmark = pytest.mark.tf
MODEL = tiny.MODEL
CLUSTERS = 8


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    fixtures = tiny.build(tmp_path_factory.mktemp("tiny"))
    return Runner(config.load(fixtures / "manifest.json").specs, ResultCache(fixtures / "cache"))


def short(name, **fields):
    """The registered recipe with a short fine-tune and no size promise (a 400-parameter
    model is mostly graph)."""
    return get_recipe(name).with_overrides({
        "name": f"{name}_short", "finetune": {"epochs": 1}, **fields,
        "promise": {"min_size_ratio": None, "min_gzip_ratio": None,
                    **fields.get("promise", {})}})


def test_prune_preserving_qat_keeps_the_pruned_sparsity_in_int8(runner):
    # Both of tiny's layers reach 80 % within the fine-tune's 10 steps; QAT fine-tunes
    # after that, and the preserving scheme keeps the zeros through to the int8 kernels.
    recipe = short("pqat_int8", prune={"frequency": 1})
    out = runner.outcome(MODEL, recipe)
    assert out.converted, out.error
    info = flatbuffer.inspect(out.tflite)
    assert recipe.prune.final_sparsity == 0.8
    assert info.sparsity >= 0.79, info.sparsity
    assert info.float_ops == [] and out.measurement.input_dtype == "int8"


@pytest.mark.parametrize("name", ["cluster", "cluster_int8", "cqat_int8"])
def test_clustering_leaves_at_most_n_values_per_channel(runner, name):
    recipe = short(name, cluster={"number_of_clusters": CLUSTERS},
                   promise={"max_clusters": CLUSTERS})
    row = runner.row(MODEL, recipe)
    assert row.converted, row.error
    assert 2 <= row.clusters.max <= CLUSTERS, row.clusters.max
    assert not rules.check_size(row, recipe.promise).failed
    assert row.accuracy_drop_pts < 5.0
    # The same metric on the float model: far more values, so the promise has teeth.
    reference = runner.outcome(MODEL, "float").tflite
    assert clusters.count(flatbuffer.kernels(reference)).max > 2 * CLUSTERS
