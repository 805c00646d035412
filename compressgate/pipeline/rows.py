"""The figures of a result row, from what was measured: the recipe's own, its scores,
drops and ratios against the float reference, and what its file says of itself (sha256,
op versions, the oldest runtime, clusters). ``Runner.row`` puts them into a
``ResultRow`` with the figures it measures on demand (memory, targets, input digests)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from compressgate.measure import litert
from compressgate.measure.stats import sqnr_db
from compressgate.pipeline.record import ClusterFigures, RecipeResult
from compressgate.project.metrics import Metric
from compressgate.recipes import REFERENCE

# The test split's labels, read only when a figure needs them.
Labels = Callable[[], Any]


def measured_fields(out: RecipeResult, ref: RecipeResult, metric: Metric,
                    labels: Labels) -> dict[str, Any]:
    """The row's fields that ``out``'s and the float reference ``ref``'s measurements
    give: seconds, scores, sizes, dtypes, ops, the drops and ratios between them, and
    what the result says of its making (layers kept float, a fallback, the fine-tune's
    own drop)."""
    m, r = out.measurement, ref.measurement
    fields: dict[str, Any] = {
        "finetune_seconds": round(out.finetune_seconds, 3),
        "convert_seconds": round(out.convert_seconds, 3),
        "metric": metric.name, **scores(metric, m, r, labels),
    }
    if m is not None:
        fields.update({
            "accuracy": m.accuracy if metric.is_accuracy else None,
            "size_bytes": m.size_bytes, "gzip_bytes": m.gzip_bytes,
            "sparsity": round(m.sparsity, 6), "input_dtype": m.input_dtype,
            "output_dtype": m.output_dtype, "ops": tuple(m.ops),
            "float_ops": tuple(m.float_ops)})
    if r is not None:
        fields.update({"float_accuracy": r.accuracy if metric.is_accuracy else None,
                       "float_size_bytes": r.size_bytes, "float_gzip_bytes": r.gzip_bytes})
    if m is not None and r is not None:
        fields.update({
            "accuracy_drop_pts": round((r.accuracy - m.accuracy) * 100, 4)
            if metric.is_accuracy else None,
            "size_ratio": round(r.size_bytes / m.size_bytes, 4),
            "gzip_ratio": round(r.gzip_bytes / m.gzip_bytes, 4),
            "float_agreement": float(np.mean(np.asarray(m.top1) == np.asarray(r.top1)))
            if metric.is_accuracy else None,
            "output_sqnr_db": None if out.recipe == REFERENCE or not m.outputs
            else sqnr_db(np.asarray(r.outputs), np.asarray(m.outputs)),
        })
        if metric.is_accuracy:  # where errors land
            fields["class_accuracy"] = litert.class_accuracy(m.top1, labels())
            fields["float_class_accuracy"] = litert.class_accuracy(r.top1, labels())
    if out.kept_float is not None:
        fields["kept_float"] = tuple(out.kept_float)
    if out.fallback is not None:
        fields["fallback"] = out.fallback
    if out.dfq is not None:
        fields["dfq"] = out.dfq
    if out.finetuned_accuracy is not None and r is not None and metric.is_accuracy:
        fields["finetune_drop_pts"] = round((r.accuracy - out.finetuned_accuracy) * 100, 4)
    return fields


def scores(metric: Metric, m: litert.Measurement | None, r: litert.Measurement | None,
           labels: Labels) -> dict[str, Any]:
    """The model's metric on the recipe and the float reference, and the loss."""
    def score(x: litert.Measurement | None) -> float | None:
        if x is None:
            return None
        if metric.is_accuracy:
            return x.accuracy
        return metric.score(labels(), np.asarray(x.outputs))

    found: dict[str, Any] = {"score": score(m), "float_score": score(r)}
    if not metric.is_accuracy:
        found.update({"higher_is_better": metric.higher_is_better,
                      "max_loss": metric.max_loss, "metric_tolerance": metric.tolerance})
    if m is not None and r is not None:
        found["metric_loss"] = round(metric.loss(found["float_score"], found["score"]), 6)
    return found


def file_fields(tflite: bytes | None) -> dict[str, Any]:
    """The file's sha256 (reproducibility), its op versions and the oldest runtime that
    loads them."""
    from compressgate.compat import runtime_versions
    from compressgate.measure import flatbuffer

    if tflite is None:
        return {}
    ops = sorted({(op.name, op.version) for op in flatbuffer.inspect(tflite).ops})
    return {"tflite_sha256": hashlib.sha256(tflite).hexdigest(),
            "op_versions": [list(op) for op in ops],
            "min_runtime": runtime_versions.requirement(ops).minimum}


def cluster_fields(tflite: bytes) -> ClusterFigures:
    """Distinct values per output channel of the weight tensors (max and mean over
    tensors): clustering visible in the file, or its absence."""
    from compressgate.measure import clusters, flatbuffer

    counted = clusters.count(flatbuffer.kernels(tflite))
    return ClusterFigures(counted.max, round(counted.mean, 2)) if counted else ClusterFigures()
