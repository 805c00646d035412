"""Model specs and their datasets: which model, which splits, which overrides.

Specs come from the project config (``project.config``); a spec only names sources, loading
the Keras model is the backend's job.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.errors import UserInputError
from compressgate.project import kerasfile
from compressgate.project.metrics import Metric
from compressgate.project.sources import Source
from compressgate.recipes import Recipe, get_recipe

SPLITS = ("train", "calib", "test")
# Keys of a model's recipe override that describe the case rather than change the recipe.
NOT_FIELDS = ("why", "unsupported", "nondeterministic")


@dataclass(frozen=True)
class Dataset:
    """Disjoint train / calibration / test splits; labels are integer class ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @classmethod
    def load(cls, path: Path, *, classification: bool = True) -> Dataset:
        if not path.is_file():
            raise UserInputError(f"{path}: data file not found (expected an .npz with splits)")
        if not zipfile.is_zipfile(path):  # np.load would try it as a pickle
            raise UserInputError(f"{path}: unreadable .npz (not a zip archive: truncated, "
                                 "or another format)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise UserInputError(f"{path}: unreadable .npz ({exc})") from None
        return cls.from_mapping(arrays, where=str(path), classification=classification)

    @classmethod
    def from_mapping(cls, arrays: Any, *, where: str, classification: bool = True) -> Dataset:
        """Splits from a mapping with keys x_train, y_train, ... (an .npz, or what a
        data function returns)."""
        if isinstance(arrays, Dataset):
            arrays = {f"{p}_{s}": getattr(arrays, f"{p}_{s}") for s in SPLITS for p in "xy"}
        if not isinstance(arrays, Mapping):
            raise UserInputError(f"{where}: expected a mapping of arrays x_/y_ for "
                                 f"{', '.join(SPLITS)}, got {type(arrays).__name__}")
        missing = [f"{p}_{s}" for s in SPLITS for p in "xy" if f"{p}_{s}" not in arrays]
        if missing:
            raise UserInputError(
                f"{where}: missing array {missing[0]!r} (expected x_/y_ for {', '.join(SPLITS)})"
            )
        data = cls(**{f"{p}_{s}": np.asarray(arrays[f"{p}_{s}"]) for s in SPLITS for p in "xy"})
        data.validate(where, classification=classification)
        return data

    def digest(self) -> str:
        """sha256 over every split's dtype, shape and bytes."""
        digest = hashlib.sha256()
        for s in SPLITS:
            for p in "xy":
                array = np.ascontiguousarray(getattr(self, f"{p}_{s}"))
                digest.update(f"{p}_{s}:{array.dtype.str}:{array.shape}".encode())
                digest.update(array.tobytes())
        return digest.hexdigest()

    def validate(self, where: str, *, classification: bool = True) -> None:
        for split in SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) == 0:
                raise UserInputError(f"{where}: split {split!r} is empty")
            if len(x) != len(y):
                raise UserInputError(
                    f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}"
                )
            if classification and (y.ndim != 1 or not np.issubdtype(y.dtype, np.integer)):
                raise UserInputError(
                    f"{where}: y_{split} must be a 1-D array of integer class ids, "
                    f"got {y.dtype} with shape {y.shape}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise UserInputError(
                    f"{where}: x_{split} rows have shape {x.shape[1:]}, "
                    f"x_train rows {self.x_train.shape[1:]}"
                )

    def check_fits(self, *, input_shape: tuple, num_classes: int, model: str, data: str,
                   classification: bool = True) -> None:
        """Fail with one line when the data cannot feed ``model``."""
        expected = tuple(input_shape[1:])
        got = tuple(self.x_train.shape[1:])
        if len(got) != len(expected) or any(e is not None and e != g
                                            for e, g in zip(expected, got, strict=True)):
            raise UserInputError(
                f"{data}: rows have shape {got}, model {model!r} expects "
                f"{tuple('any' if e is None else e for e in expected)}"
            )
        if not classification:
            return
        for split in SPLITS:
            y = getattr(self, f"y_{split}")
            if y.min() < 0 or y.max() >= num_classes:
                raise UserInputError(
                    f"{data}: y_{split} has labels in [{y.min()}, {y.max()}], "
                    f"model {model!r} has {num_classes} classes (expected 0..{num_classes - 1})"
                )


@dataclass(frozen=True)
class ModelSpec:
    """A model under the gate: where it and its data come from, how it is scored, and
    per-recipe overrides."""

    name: str
    model: Source
    data: Source
    # Recurrent models convert only with a static batch (TFLite's fused LSTM kernels).
    static_batch: int | None = None
    recipe_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric: Metric = field(default_factory=Metric)
    # module:function returning the custom objects the Keras file needs to load.
    custom_objects: Source | None = None
    # The recipes this model is gated with (None: the project's list, or all).
    recipes: tuple[str, ...] | None = None
    # gate.tolerances.Tolerances for this model's baseline checks (None: the project's).
    tolerances: Any = None
    # The config file that defines this model (where its overrides are written).
    origin: Path | None = None
    # Files made by other pipelines, gated as this model's recipes (name -> recipe
    # carrying a ``Candidate``); always gated with the model's own recipes.
    candidates: dict[str, Recipe] = field(default_factory=dict)
    # Thread counts the latency check times at (always 1; ``latency_threads``).
    latency_threads: tuple[int, ...] = (1,)

    @property
    def model_path(self) -> Path:
        return self.model.path

    @property
    def is_tflite(self) -> bool:
        """A float ``.tflite`` file (any framework's export) rather than a Keras model."""
        return not self.model.is_function and self.model.text.lower().endswith(".tflite")

    def unsupported(self, recipe: Recipe) -> str | None:
        """Why ``recipe`` cannot apply to this model (expected to fail to convert): the
        config's ``unsupported``, a recipe that needs Keras on a ``.tflite`` source, or
        one that needs tf_keras on a Keras 3 file with a layer tf_keras cannot rebuild."""
        declared = self.recipe_overrides.get(recipe.name, {}).get("unsupported")
        if declared:
            return declared
        if self.is_tflite and recipe.needs_keras:
            return (f"unsupported for a .tflite source: {recipe.name} needs the Keras model "
                    "(the TF converter, QAT or pruning); litert-quantizer recipes (lq_*) "
                    "apply")
        blocker = self.keras3_blocker if needs_tf_keras(recipe) else None
        if blocker:
            return (f"unsupported for this Keras 3 model: {recipe.name} needs tf_keras "
                    f"(tfmot), and {blocker}; float, ptq_* and lq_* apply")
        return None

    @property
    def keras3_blocker(self) -> str | None:
        """The first layer of a Keras 3 model file that no tf_keras layer can rebuild
        (read from the file, without TensorFlow); None for any other source."""
        if self.model.is_function or self.is_tflite or not self.model.path.is_file():
            return None
        return _keras3_blocker(self.model.path, self.model.path.stat().st_mtime_ns)

    @property
    def data_path(self) -> Path:
        return self.data.path

    def load_data(self) -> Dataset:
        if self.data.is_function:
            data = Dataset.from_mapping(self.data.call(), where=self.data.text,
                                        classification=self.metric.is_accuracy)
        else:
            data = Dataset.load(self.data.path, classification=self.metric.is_accuracy)
        return data

    def base_recipe(self, name: str) -> Recipe:
        """The recipe or candidate called ``name`` for this model, before overrides."""
        return self.candidates[name] if name in self.candidates else get_recipe(name)

    def resolve(self, name: str) -> Recipe:
        """The recipe or candidate called ``name`` with this model's overrides."""
        return self.recipe(self.base_recipe(name))

    def recipe(self, base: Recipe) -> Recipe:
        """``base`` with this model's overrides applied (e.g. a lower size promise).

        An override entry may carry ``why`` (the measured reason, for people),
        ``unsupported`` (why the recipe cannot apply to this model) and
        ``nondeterministic`` (why its file is not byte-identical across runs); none is a
        recipe field.
        """
        overrides = {k: v for k, v in self.recipe_overrides.get(base.name, {}).items()
                     if k not in NOT_FIELDS}
        if not overrides:
            return base
        return base.with_overrides(overrides, where=f"model {self.name!r}, recipe {base.name}")

    def file_fingerprint(self) -> str | None:
        """sha256 over the model and data files, or None when either is built by a
        function (the runner then digests what the function returns)."""
        if self.model.is_function or self.data.is_function:
            return None
        digest = hashlib.sha256()
        for path in (self.model.path, self.data.path):
            digest.update(path_sha256(path).encode())
        return digest.hexdigest()


def needs_tf_keras(recipe: Recipe) -> bool:
    """Whether ``recipe`` needs a tf_keras model (tfmot's fine-tuning, the layer names
    of keep_float, data-free quantization's layers), not just a model the TF converter
    takes."""
    return recipe.needs_finetune or recipe.keep_float is not None or recipe.dfq is not None


@functools.cache
def _keras3_blocker(path: Path, mtime_ns: int) -> str | None:
    """``ModelSpec.keras3_blocker`` for a file (``mtime_ns``: a rewritten file is read
    again)."""
    if not kerasfile.keras3_version(path):
        return None
    config = kerasfile.model_config(path)
    return kerasfile.twin_blocker(config, kerasfile.tf_keras_layer_names().__contains__) \
        if config else None


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of every file under a directory (a SavedModel)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode())
            digest.update(file_sha256(item).encode())
        return digest.hexdigest()
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read ({exc.strerror})") from None


def select(specs: dict[str, ModelSpec], names: list[str] | None) -> list[ModelSpec]:
    """The specs named (all when ``names`` is empty), in the order given."""
    if not names:
        return list(specs.values())
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UserInputError(
            f"unknown model {unknown[0]!r} (expected one of {', '.join(specs)})"
        )
    return [specs[n] for n in names]
