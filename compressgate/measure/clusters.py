"""Distinct values per output channel of the weight tensors: what clustering leaves
visible in a ``.tflite`` file.

Counted per output channel, not per tensor, because the converter scales each output
channel on its own (BatchNorm folding, per-channel int8 scales): a kernel clustered to 16
values keeps at most 16 in each channel, while the tensor as a whole may hold up to 16
times its channel count.
Pure numpy; the flatbuffer reader supplies the arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterCount:
    """Per weight tensor, its most populous output channel's distinct values; ``max`` and
    ``mean`` over the tensors."""

    max: int
    mean: float

    def to_dict(self) -> dict[str, float]:
        return {"clusters_max": self.max, "clusters_mean": round(self.mean, 2)}


def distinct_per_channel(values: np.ndarray, axis: int | None) -> int:
    """The most distinct values any slice along ``axis`` holds (the whole tensor when
    ``axis`` is None). ``-0.0`` and ``0.0`` count as one value."""
    values = np.asarray(values)
    if values.size == 0:
        return 0
    if axis is None:
        rows = values.reshape(1, -1)
    else:
        rows = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    ordered = np.sort(rows, axis=1)
    distinct = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
    return int(distinct.max())


def count(kernels: Iterable[tuple[np.ndarray, int | None]]) -> ClusterCount | None:
    """Summarize ``(values, channel axis)`` pairs; None when there are no kernels."""
    per_tensor = [distinct_per_channel(values, axis) for values, axis in kernels]
    per_tensor = [n for n in per_tensor if n]
    if not per_tensor:
        return None
    return ClusterCount(max(per_tensor), float(np.mean(per_tensor)))
