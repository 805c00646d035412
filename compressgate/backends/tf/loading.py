"""Loading a Keras 2 model from a path or a ``module:function``, with one clear line
for every way that fails; its digest, shape and what ``compressgate init`` says of it."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

import compressgate.backends.tf.keras3 as keras3
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import (
    deterministic,
    first_line,
    import_keras,
    is_keras3_model,
)
from compressgate.backends.tf.qat import quantize
from compressgate.backends.tf.recurrent import recurrent_class, recurrent_layers
from compressgate.errors import UserInputError
from compressgate.project import kerasfile
from compressgate.project.models import ModelSpec


def load_model(source: Path | ModelSpec, custom_objects: dict | None = None):
    """A fresh Keras 2 model from a path or a spec's source (a Keras 3 model's tf_keras
    twin), or one clear line saying why not."""
    loaded = load_any(source, custom_objects)
    if isinstance(loaded, keras3.Keras3Model):
        if loaded.twin is None:
            raise UserInputError(f"{loaded.where}: Keras 3 model: {loaded.blocker}")
        return loaded.twin
    return loaded


def load_any(source: Path | ModelSpec, custom_objects: dict | None = None):
    """A fresh tf_keras model, or a ``keras3.Keras3Model`` for a Keras 3 source (the
    user's model and its twin), from a path or a spec's source."""
    if isinstance(source, ModelSpec):
        spec = source
        if spec.model.is_function:
            return _built_model(spec)
        objects = spec.custom_objects.call() if spec.custom_objects else None
        if objects is not None and not isinstance(objects, dict):
            raise UserInputError(f"{spec.custom_objects.text}: expected a dict of custom "
                                 f"objects, got {type(objects).__name__}")
        return load_any(spec.model.path, objects)
    path = source
    if not path.exists():
        raise UserInputError(f"{path}: model file not found")
    if kerasfile.keras3_version(path):
        return keras3.load(path, custom_objects)
    keras = import_keras()
    missing = [name for name in kerasfile.custom_classes(path)
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


def _built_model(spec: ModelSpec):
    model = spec.model.call()
    if is_keras3_model(model):
        return keras3.with_twin(model, spec.model.text)
    if not isinstance(model, import_keras().Model):
        raise UserInputError(
            f"{spec.model.text}: expected a tf_keras or Keras 3 Model, got "
            f"{type(model).__module__}.{type(model).__name__}")
    return model


def model_digest(spec: ModelSpec) -> str:
    """sha256 over a built model's architecture and weights (for cache keys)."""
    deterministic()  # a function that initializes weights must give the same ones
    model = load_any(spec)
    if isinstance(model, keras3.Keras3Model):  # the user's model, not the twin
        model = model.model
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True,
                                       default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def model_info(model) -> tuple[tuple, int]:
    """(input shape, number of classes)."""
    return tuple(model.input_shape), int(model.output_shape[-1])


def describe(model) -> dict:
    """What ``compressgate init`` writes into a starter config about ``model`` (for a
    ``keras3.Keras3Model``, see ``_describe_keras3``)."""
    if isinstance(model, keras3.Keras3Model):
        return _describe_keras3(model)
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


def _describe_keras3(source: keras3.Keras3Model) -> dict:
    """``describe`` of a Keras 3 model: its twin's (Keras 3's own layers when it has
    none), with the path it takes (``keras3``) and, when the recipes that need tf_keras
    cannot apply, why (``keras3_blocker``)."""
    if source.twin is not None:
        info = describe(source.twin)
    else:
        model = source.model
        info = {"input_shape": [None if d is None else int(d) for d in model.input_shape],
                "output_units": int(model.output_shape[-1]),
                "params": int(model.count_params()),
                "layers": [{"name": layer.name, "class": type(layer).__name__,
                            "params": int(layer.count_params())} for layer in model.layers],
                "qat_error": None, "recurrent": [], "lstm": False,
                "compiled": getattr(model, "loss", None) is not None}
    return {**info, "keras3": keras3.describe_path(source, None),
            "keras3_blocker": source.blocker}


def verify_keras3(source, x_test) -> dict:
    """What ``describe`` says of a Keras 3 model once its twin is compared with it on
    ``x_test`` (nothing for any other model)."""
    if not isinstance(source, keras3.Keras3Model) or source.twin is None:
        return {}
    verified = keras3.verify(source, x_test)
    return {"keras3": keras3.describe_path(source, verified),
            "keras3_blocker": verified.mismatch}


def layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]
