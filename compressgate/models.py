"""Model specs and their datasets: which Keras file, which splits, which overrides.

The bundled fixtures are listed in ``fixtures/manifest.json``; a spec only names files,
loading the Keras model is the backend's job.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.errors import UserInputError
from compressgate.recipes import Recipe

SPLITS = ("train", "calib", "test")
MANIFEST_SCHEMA = 1


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
    def load(cls, path: Path) -> Dataset:
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
        missing = [f"{p}_{s}" for s in SPLITS for p in "xy" if f"{p}_{s}" not in arrays]
        if missing:
            raise UserInputError(
                f"{path}: missing array {missing[0]!r} (expected x_/y_ for {', '.join(SPLITS)})"
            )
        data = cls(**{f"{p}_{s}": arrays[f"{p}_{s}"] for s in SPLITS for p in "xy"})
        data.validate(str(path))
        return data

    def validate(self, where: str) -> None:
        for split in SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) == 0:
                raise UserInputError(f"{where}: split {split!r} is empty")
            if len(x) != len(y):
                raise UserInputError(
                    f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}"
                )
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise UserInputError(
                    f"{where}: y_{split} must be a 1-D array of integer class ids, "
                    f"got {y.dtype} with shape {y.shape}"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise UserInputError(
                    f"{where}: x_{split} rows have shape {x.shape[1:]}, "
                    f"x_train rows {self.x_train.shape[1:]}"
                )

    def check_fits(self, *, input_shape: tuple, num_classes: int, model: str) -> None:
        """Fail with one line when the data cannot feed ``model``."""
        expected = tuple(input_shape[1:])
        if tuple(self.x_train.shape[1:]) != expected:
            raise UserInputError(
                f"model {model}: data rows have shape {tuple(self.x_train.shape[1:])}, "
                f"the model expects {expected}"
            )
        for split in SPLITS:
            y = getattr(self, f"y_{split}")
            if y.min() < 0 or y.max() >= num_classes:
                raise UserInputError(
                    f"model {model}: y_{split} has labels in [{y.min()}, {y.max()}], "
                    f"the model has {num_classes} classes (expected 0..{num_classes - 1})"
                )


@dataclass(frozen=True)
class ModelSpec:
    """A model under the gate: its Keras file, its data, and per-recipe overrides."""

    name: str
    model_path: Path
    data_path: Path
    # Recurrent models convert only with a static batch (TFLite's fused LSTM kernels).
    static_batch: int | None = None
    recipe_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    float_test_accuracy: float | None = None

    def recipe(self, base: Recipe) -> Recipe:
        """``base`` with this model's overrides applied (e.g. a lower size promise).

        An override entry may carry ``why`` (the measured reason, for people) and
        ``unsupported`` (why the recipe cannot apply to this model); neither is a field.
        """
        overrides = {k: v for k, v in self.recipe_overrides.get(base.name, {}).items()
                     if k not in ("why", "unsupported")}
        if not overrides:
            return base
        return base.with_overrides(overrides, where=f"model {self.name}, recipe {base.name}")

    def fingerprint(self) -> str:
        """sha256 over the model and data bytes: part of every cache key."""
        digest = hashlib.sha256()
        for path in (self.model_path, self.data_path):
            digest.update(file_sha256(path).encode())
        return digest.hexdigest()


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read ({exc.strerror})") from None


def load_manifest(directory: Path) -> dict[str, ModelSpec]:
    """The model specs listed in ``<directory>/manifest.json``."""
    path = directory / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path}: fixtures manifest not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(raw, dict) or raw.get("schema") != MANIFEST_SCHEMA:
        raise UserInputError(f"{path}: expected schema {MANIFEST_SCHEMA}")
    specs = {}
    for name, entry in raw.get("models", {}).items():
        try:
            specs[name] = ModelSpec(
                name=name,
                model_path=directory / entry["model"],
                data_path=directory / entry["data"],
                static_batch=entry.get("static_batch"),
                recipe_overrides=entry.get("recipe_overrides", {}),
                float_test_accuracy=entry.get("float_test_accuracy"),
            )
        except (KeyError, TypeError) as exc:
            raise UserInputError(f"{path}: model {name!r} lacks field {exc}") from None
    return specs


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
