"""Loading a Keras 2 model from a path or a ``module:function``, with one clear line
for every way that fails; its digest, shape and what ``compressgate init`` says of it."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import (
    deterministic,
    first_line,
    import_keras,
)
from compressgate.backends.tf.qat import quantize
from compressgate.backends.tf.recurrent import recurrent_class, recurrent_layers
from compressgate.errors import UserInputError
from compressgate.project.models import ModelSpec


def load_model(source: Path | ModelSpec, custom_objects: dict | None = None):
    """A fresh Keras 2 model from a path or a spec's source, or one clear line saying
    why not."""
    if isinstance(source, ModelSpec):
        spec = source
        if spec.model.is_function:
            return _built_model(spec)
        objects = spec.custom_objects.call() if spec.custom_objects else None
        if objects is not None and not isinstance(objects, dict):
            raise UserInputError(f"{spec.custom_objects.text}: expected a dict of custom "
                                 f"objects, got {type(objects).__name__}")
        return load_model(spec.model.path, objects)
    path = source
    if not path.exists():
        raise UserInputError(f"{path}: model file not found")
    keras3 = _keras3_version(path)
    if keras3:
        raise UserInputError(
            f"{path}: saved by Keras {keras3}; compressgate needs a Keras 2 (tf-keras) model "
            "(tfmot 0.8): re-save it with tf_keras, or point the config at a module:function "
            "that builds it with tf_keras")
    keras = import_keras()
    missing = [name for name in _custom_classes(path)
               if name not in (custom_objects or {})
               and keras.saving.get_registered_object(name) is None]
    if missing:  # tf_keras would fail later with "'str' object is not callable"
        raise UserInputError(
            f"{path}: unknown custom object {missing[0]!r}; set custom_objects = "
            "\"module:function\" (returning {name: class}) for this model in the config")
    try:
        with keras.utils.custom_object_scope(custom_objects or {}):
            return keras.models.load_model(path, compile=True)
    except Exception as exc:  # Keras raises many types for a bad file
        text = first_line(exc)
        unknown = re.search(r"Unknown (?:layer|object|loss|metric|activation)[^'\"]*"
                            r"['\"]([^'\"]+)['\"]", text)
        if unknown:
            raise UserInputError(
                f"{path}: unknown custom object {unknown.group(1)!r}; set custom_objects = "
                "\"module:function\" (returning {name: class}) for this model in the config"
            ) from None
        raise UserInputError(f"{path}: cannot load as a Keras 2 model ({text[:200]})") from None


def _archive_json(path: Path, member: str) -> dict | None:
    """A JSON member of a ``.keras`` archive; None when absent or unreadable (a damaged
    archive is left to ``load_model``, which names the problem)."""
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(member))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None


def _keras3_version(path: Path) -> str | None:
    """The Keras version a ``.keras`` archive records, when it is 3 or newer."""
    version = str((_archive_json(path, "metadata.json") or {}).get("keras_version", ""))
    return version if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 3 \
        else None


def _custom_classes(path: Path) -> list[str]:
    """Classes a ``.keras`` archive's config names from outside Keras (custom layers)."""
    config = _archive_json(path, "config.json")
    if config is None:
        return []
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and "class_name" in node \
                    and module.split(".")[0] not in ("keras", "tf_keras", "builtins"):
                found.append(node.get("registered_name") or node["class_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return list(dict.fromkeys(found))


def _built_model(spec: ModelSpec):
    model = spec.model.call()
    if not isinstance(model, import_keras().Model):
        raise UserInputError(
            f"{spec.model.text}: expected a tf_keras Model, got {type(model).__module__}."
            f"{type(model).__name__} (build it with tf_keras, not Keras 3)")
    return model


def model_digest(spec: ModelSpec) -> str:
    """sha256 over a built model's architecture and weights (for cache keys)."""
    deterministic()  # a function that initializes weights must give the same ones
    model = load_model(spec)
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True,
                                       default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def model_info(model) -> tuple[tuple, int]:
    """(input shape, number of classes)."""
    return tuple(model.input_shape), int(model.output_shape[-1])


def describe(model) -> dict:
    """What ``compressgate init`` writes into a starter config about ``model``."""
    layers = [{"name": layer.name, "class": type(layer).__name__,
               "params": int(layer.count_params())} for layer in model.layers]
    qat_error = None
    try:
        quantize(import_keras().models.clone_model(model))
    except RecipeUnsupported as exc:
        qat_error = str(exc).removeprefix("tfmot QAT cannot quantize this model: ")
    except Exception as exc:  # anything else tfmot raises while wrapping
        qat_error = first_line(exc)
    recurrent = recurrent_layers(model)
    return {"input_shape": [None if d is None else int(d) for d in model.input_shape],
            "output_units": int(model.output_shape[-1]), "params": int(model.count_params()),
            "layers": layers, "qat_error": qat_error, "recurrent": recurrent,
            # Fused LSTM kernels have no 16x8 version (GRU/RNN convert unrolled).
            "lstm": any(recurrent_class(layer) == "LSTM" for layer in model.layers),
            "compiled": getattr(model, "loss", None) is not None}


def layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]
