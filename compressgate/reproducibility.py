"""Reproducibility: the same model, recipe, seeds and versions give the same ``.tflite``.

Every recipe seeds everything and enables TensorFlow's op determinism
(``backends.tf.deterministic``), so a conversion is expected to be byte-identical across
processes and runs, fine-tuned recipes included. The gate compares the sha256 of this
run's file with the one recorded in the baseline, when it was recorded with the same
library versions, Python and CPU (float kernels, hence fine-tuned weights and calibration
ranges, may differ between CPUs). A result served from the result cache was converted
in an earlier run; the row says so, since only a fresh conversion proves anything.
"""

from __future__ import annotations

from typing import Any

from compressgate.gate import Row

METRIC = "tflite_sha256"


def check_row(row: dict[str, Any], metrics: dict[str, Any], env_now: dict[str, str],
              env_then: dict[str, str], create_hint: str) -> Row:
    """The ``tflite_sha256`` row of the baseline check."""
    measured = row[METRIC]
    recorded = metrics.get(METRIC)
    if recorded is None:
        return Row(METRIC, measured[:12], None, "identical", "regression",
                   f"no baseline for {METRIC}; create it with: {create_hint}")
    moved = sorted(k for k in env_now if env_then.get(k) != env_now[k])
    if moved:
        return Row(METRIC, measured[:12], recorded[:12], "identical", "skipped",
                   "baseline recorded with other " + ", ".join(moved))
    if measured != recorded:
        return Row(METRIC, measured[:12], recorded[:12], "identical", "regression",
                   "same inputs, seeds and versions gave a different .tflite")
    return Row(METRIC, measured[:12], recorded[:12], "identical", "pass",
               "from the result cache, not converted in this run" if row.get("cached")
               else "converted in this run")
