"""What the pipeline asks of a backend: model + recipe + data -> ``.tflite`` bytes.

A backend is anything with these methods (the TensorFlow backend is a module,
``compressgate.backends.tf``; tests use ``backends.faults.FaultyBackend``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from compressgate.backends.equalization import DfqReport
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe


@dataclass(frozen=True)
class Artifact:
    """What a recipe produced: the ``.tflite`` bytes, or the reason there are none."""

    tflite: bytes | None
    error: str | None = None
    finetune_seconds: float = 0.0
    convert_seconds: float = 0.0
    # Top-1 predictions of the Keras model on the test split (the float reference only).
    keras_top1: np.ndarray | None = None
    # Mixed precision: the Keras layers kept float, and the auto search's steps.
    kept_float: tuple[str, ...] | None = None
    search: dict | None = None
    # Accuracy on the test split of the float Keras model after the recipe's float
    # fine-tunes (channel pruning, pruning, clustering), before QAT and conversion.
    finetuned_accuracy: float | None = None
    # Data-free quantization: what it equalized, absorbed and corrected.
    dfq: DfqReport | None = None


class RecipeUnsupported(Exception):
    """The backend cannot apply the recipe to this model (not a crash): the result
    carries the reason."""


class Backend(Protocol):
    def compress(self, spec: ModelSpec, recipe: Recipe, data: Dataset) -> Any: ...
    def versions(self) -> dict[str, str]: ...
    def model_digest(self, spec: ModelSpec) -> str: ...
