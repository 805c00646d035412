"""Clustering as recipe data, the distinct-values metric and its promise. No TensorFlow:
arrays and the bundled int8 ``.tflite`` go through numpy and the flatbuffer reader."""

from pathlib import Path

import numpy as np
import pytest

from compressgate import Recipe, UserInputError, get_recipe
from compressgate.gate import rules
from compressgate.gate.records import Row, Status
from compressgate.measure import clusters, flatbuffer
from compressgate.pipeline.record import ClusterFigures, ResultRow
from compressgate.recipes import COLLABORATIVE_RECIPES, Clustering, Promise, default_recipes
from compressgate.report import view

TFLITE = Path(__file__).parent.parent / "data" / "tabular_mlp_ptq_int8.tflite"


def test_distinct_values_are_counted_per_output_channel():
    # Channel 0 holds 3 values, channel 1 holds 2: 5 in the tensor, at most 3 per channel.
    kernel = np.array([[1.0, 2.0, 3.0, 1.0], [7.0, 7.0, 8.0, 8.0]])
    assert clusters.distinct_per_channel(kernel, 0) == 3
    assert clusters.distinct_per_channel(kernel, None) == 5
    assert clusters.distinct_per_channel(kernel.T, 1) == 3  # the axis is honoured
    assert clusters.distinct_per_channel(np.array([[0.0, -0.0]]), 0) == 1


def test_count_gives_max_and_mean_over_tensors():
    counted = clusters.count([(np.arange(6.0).reshape(2, 3), 0),
                              (np.zeros((4, 4)), None), (np.zeros((0, 3)), 0)])
    assert counted == clusters.ClusterCount(max=3, mean=2.0)  # the empty tensor is skipped
    assert counted.to_dict() == {"clusters_max": 3, "clusters_mean": 2.0}
    assert clusters.count([]) is None


def test_kernels_of_a_tflite_file_carry_their_channel_axis():
    kernels = flatbuffer.kernels(TFLITE.read_bytes())
    # tabular_mlp: Dense 30 -> 64 -> 32 -> 2, int8 [out, in] kernels, per-channel scales.
    assert sorted(v.shape for v, _ in kernels) == [(2, 32), (32, 64), (64, 30)]
    assert {axis for _, axis in kernels} == {0}
    assert all(v.dtype == np.int8 for v, _ in kernels)
    # An unclustered model: far more than 16 values in some output channel.
    assert clusters.count(kernels).max > 16


def test_kernels_refuse_a_file_that_is_not_tflite():
    with pytest.raises(UserInputError, match=r"m\.tflite: not a TFLite flatbuffer"):
        flatbuffer.kernels(b"not a model", name="m.tflite")


def test_max_clusters_promise_gates_the_measured_count():
    promise = Promise(max_clusters=16)
    base = {"model": "m", "recipe": "cluster", "size_ratio": 1.0, "gzip_ratio": 3.0}
    def size(**clusters):
        return rules.check_size(ResultRow.from_dict(base | clusters), promise)

    assert not size(clusters_max=16).failed
    assert size(clusters_max=17).failed  # clustering lost
    assert size().failed  # nothing counted cannot pass
    # The row a user reads: the count against the limit, or why there is none.
    row = "distinct values per channel (max)"
    assert size(clusters_max=17).rows[-1] == Row(row, 17, 16, "<= limit", Status.FAIL, "")
    assert size(clusters_max=16).rows[-1] == Row(row, 16, 16, "<= limit", Status.PASS, "")
    assert size().rows[-1] == Row(row, None, 16, "<= limit", Status.FAIL,
                                  "no weight tensors counted in this file")


@pytest.mark.parametrize(("fields", "message"), [
    ({"qat_preserve": "sparsity", "quantization": "int8"}, "qat=true"),
    ({"qat_preserve": "sparsity", "quantization": "int8", "qat": True}, "a prune stage"),
    ({"qat_preserve": "clusters", "quantization": "int8", "qat": True}, "a cluster stage"),
    ({"qat_preserve": "weights", "quantization": "int8", "qat": True}, "one of"),
    ({"cluster": {"number_of_clusters": 1}}, "cluster.number_of_clusters"),
    ({"cluster": {"init": "kmeans"}}, "cluster.init"),
    ({"cluster": {}, "quantization": "int8", "keep_float": ["dense"]}, "keep_float"),
    ({"promise": {"max_clusters": 0}}, "promise.max_clusters"),
    ({"promise": {"max_clusters": "16"}}, "promise.max_clusters"),
    ({"cluster": {}, "litert_recipe": "dynamic_wi8_afp32"}, "litert_recipe: expected none"),
])
def test_bad_collaborative_fields_are_one_line_naming_the_field(fields, message):
    with pytest.raises(UserInputError, match=message) as info:
        Recipe.from_dict({"name": "x", **fields})
    assert "\n" not in str(info.value)


def test_new_fields_leave_old_cache_keys_alone_and_round_trip():
    data = get_recipe("ptq_int8").to_dict()
    assert "cluster" not in data and "qat_preserve" not in data
    assert "max_clusters" not in data["promise"]
    for recipe in COLLABORATIVE_RECIPES:
        assert Recipe.from_dict(recipe.to_dict()) == recipe
    recipe = get_recipe("cluster").with_overrides({"cluster": {"number_of_clusters": 8}})
    assert recipe.cluster == Clustering(number_of_clusters=8)


def test_collaborative_recipes_are_opt_in():
    assert not {r.name for r in COLLABORATIVE_RECIPES} & {r.name for r in default_recipes()}
    assert all(r.needs_finetune and not r.is_int8_ptq for r in COLLABORATIVE_RECIPES)


def test_clustered_rows_note_their_values_per_channel():
    plain = ResultRow("m", "ptq_int8", True)
    clustered = ResultRow("m", "cluster", True, clusters=ClusterFigures(16, 15.25))
    frame = view.results_frame([view.ReportRow(plain), view.ReportRow(clustered)])
    notes = dict(zip(*frame[["recipe", "note"]].T.values, strict=True))
    assert notes == {"ptq_int8": "",
                     "cluster": "16 values per channel (max; mean over tensors 15.2)"}


def test_diagnosis_names_every_fine_tuning_stage():
    from compressgate.diagnosis.collect import debuggable

    assert "fine-tunes (pruning, QAT)" in debuggable(get_recipe("pqat_int8"))
    assert "fine-tunes (clustering):" in debuggable(get_recipe("cluster_int8"))
    assert "fine-tunes (pruning):" in debuggable(get_recipe("prune_int8"))
