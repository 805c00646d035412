"""The one module that imports TensorFlow, tf-keras and tfmot: recipe -> ``.tflite`` bytes.

Every recipe starts from a fresh load of the model file: ``prune_low_magnitude`` and QAT
wrap the original layer objects, so reusing one model object would silently compress the
float reference too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import compressgate  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from compressgate.errors import UserInputError
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe

SEED = 1234
TENSORBOARD_ENV = "COMPRESSGATE_TENSORBOARD"


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


class RecipeUnsupported(Exception):
    """tfmot or the converter cannot apply the recipe to this model (not a crash)."""


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    import absl.logging
    import tf_keras

    # tf-keras warns on every load that the saved optimizer has no slot variables.
    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf_keras


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def versions() -> dict[str, str]:
    """Versions of everything that determines a conversion."""
    from importlib.metadata import version

    return {
        pkg: version(pkg)
        for pkg in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert")
    }


def deterministic(seed: int = SEED) -> None:
    """Seeds, op determinism and a clean Keras session: the same inputs give
    byte-identical ``.tflite`` files whatever this process ran before (auto-generated
    layer names such as ``dense_7`` would otherwise depend on history)."""
    tf = _tf()
    keras = _keras()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence converter and tfmot chatter, which the C++ side writes straight to file
    descriptors 1 and 2 (the run prints its own progress; errors arrive as exceptions)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


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
    keras = _keras()
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
        text = _first_line(exc)
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
    if not isinstance(model, _keras().Model):
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


def _with_batch(model, batch: int | None):
    """A clone of ``model`` whose input has batch dimension ``batch``, same weights."""
    config = model.get_config()
    for layer in config.get("layers", []):
        if layer["class_name"] == "InputLayer":
            shape = layer["config"]["batch_input_shape"]
            layer["config"]["batch_input_shape"] = (batch, *shape[1:])
    if "build_input_shape" in config:
        config["build_input_shape"] = (batch, *config["build_input_shape"][1:])
    with _tfmot().quantization.keras.quantize_scope():
        clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _compile_like(model, source, learning_rate: float) -> None:
    keras = _keras()
    loss = getattr(source, "loss", None) or "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                  metrics=["accuracy"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def tensorboard_dir(model: str, recipe: str) -> Path | None:
    """Where a fine-tune writes TensorBoard logs: ``$COMPRESSGATE_TENSORBOARD/<model>-<recipe>``
    (an environment variable, so worker processes see it too), or None."""
    root = os.environ.get(TENSORBOARD_ENV)
    return Path(root) / f"{model}-{recipe}" if root else None


def use_tensorboard(directory: Path) -> None:
    """Send fine-tune logs to ``directory``: one clear line if TensorBoard is missing."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UserInputError(f"TensorBoard logs to {directory}: the tensorboard package is "
                             "not installed (pip install 'compressgate[tensorboard]')")
    os.environ[TENSORBOARD_ENV] = str(directory.resolve())


def _tensorboard(logs: Path | None, *, pruning: bool = False) -> list:
    """Keras TensorBoard (loss, accuracy) and, when pruning, tfmot's ``PruningSummaries``
    (sparsity and threshold per pruned weight) into ``logs``."""
    if logs is None:
        return []
    callbacks = [_keras().callbacks.TensorBoard(log_dir=str(logs))]
    if pruning:
        callbacks.append(_tfmot().sparsity.keras.PruningSummaries(log_dir=str(logs)))
    return callbacks


# --- recipes ----------------------------------------------------------------------------


def _qat(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    tfmot = _tfmot()
    try:
        with _quiet():
            if recipe.keep_float is not None:
                from compressgate.backends import tf_diagnose

                q_model = tf_diagnose.quantize_model_keep_float(model, recipe)
            else:
                q_model = tfmot.quantization.keras.quantize_model(model)
    except (RuntimeError, ValueError) as exc:
        raise RecipeUnsupported(
            f"tfmot QAT cannot quantize this model: {_first_line(exc)}") from None
    _compile_like(q_model, model, recipe.finetune.learning_rate)
    q_model.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
                callbacks=_tensorboard(logs),
                batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0)
    return q_model


def _prunable(layer) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    if not PruneRegistry.supports(layer) or not layer.trainable_weights:
        return False
    try:
        return bool(PruneRegistry._weight_names(layer))
    except KeyError:  # recurrent layers are registered apart, by cell
        return True


def _prune(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    tfmot = _tfmot()
    keras = _keras()
    spec = recipe.prune
    assert spec is not None
    steps_per_epoch = int(np.ceil(len(data.x_train) / recipe.finetune.batch_size))
    total = steps_per_epoch * recipe.finetune.epochs
    begin, end = int(spec.begin * total), max(1, int(spec.end * total))
    kwargs: dict = {}
    if spec.structure == "2by4":
        schedule = tfmot.sparsity.keras.ConstantSparsity(
            0.5, begin_step=begin, end_step=end, frequency=spec.frequency)
        kwargs["sparsity_m_by_n"] = (2, 4)
    else:
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=spec.initial_sparsity, final_sparsity=spec.final_sparsity,
            begin_step=begin, end_step=end, frequency=spec.frequency)
    candidates = [layer for layer in model.layers if _prunable(layer)]
    if spec.structure == "2by4":
        # tfmot's m-by-n sparsity covers Conv2D and Dense kernels only.
        candidates = [c for c in candidates
                      if isinstance(c, keras.layers.Conv2D | keras.layers.Dense)]
    if spec.skip_first_and_last and len(candidates) > 2:
        candidates = candidates[1:-1]
    if not candidates:
        raise RecipeUnsupported("no layer of this model can be pruned by tfmot")
    targets = {layer.name for layer in candidates}

    def wrap(layer):
        if layer.name in targets:
            return tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedule, **kwargs)
        return layer

    pruned = keras.models.clone_model(model, clone_function=wrap)
    _compile_like(pruned, model, recipe.finetune.learning_rate)
    pruned.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
               batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep(),
                          *_tensorboard(logs, pruning=True)])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    if spec.recalibrate_batchnorm:
        _recalibrate_batchnorm(stripped, data.x_train)
    return stripped


def _recalibrate_batchnorm(model, x: np.ndarray) -> None:
    """Set BatchNorm moving statistics to the training split's statistics under the
    final (pruned) weights: one full-batch pass in training mode with momentum 0."""
    keras = _keras()
    layers = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for chunk in np.array_split(x, max(1, len(x) // 2048)):
            model(chunk, training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


def _convert(model, recipe: Recipe, data: Dataset) -> bytes:
    converter = _converter(model, recipe, data)
    try:
        with _quiet():
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ...
        raise RecipeUnsupported(f"converter failed: {_converter_reason(exc)}") from None


def _converter(model, recipe: Recipe, data: Dataset):
    """The converter ``recipe`` configures for ``model``, not yet run."""
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    quant = recipe.quantization if recipe.optimize else "none"
    if recipe.optimize and (quant != "none" or recipe.qat):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant in ("int8", "int16x8"):
        calib = data.x_calib[: recipe.calibration_samples].astype(np.float32)
        calib = calib * np.float32(recipe.calibration_scale)

        def representative():
            for row in calib:
                yield [row[None]]

        converter.representative_dataset = representative
    if quant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if recipe.keep_float is not None:  # the kept layers need float kernels
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        if not recipe.float_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif quant == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def _converter_reason(exc: BaseException) -> str:
    """The converter's useful line (e.g. the op it could not quantize), not its preamble."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _perturb(model, fraction: float) -> None:
    """Plant perturbed weights: seeded Gaussian noise of ``fraction`` times each float
    trainable weight tensor's standard deviation (a fault only the accepted result can
    reveal; BatchNorm statistics are left alone, a negative variance is no small fault)."""
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:
        w = variable.numpy()
        if w.size > 1:
            variable.assign(w + rng.normal(0.0, fraction * float(np.std(w)), w.shape)
                            .astype(w.dtype))


def compress(spec: ModelSpec, recipe: Recipe, data: Dataset) -> Artifact:
    """Run ``recipe`` on a fresh copy of ``spec``'s model and convert it to ``.tflite``.

    Bad user input raises ``UserInputError``; a recipe that tfmot or the converter cannot
    apply to this model returns an ``Artifact`` carrying the reason.
    """
    deterministic()
    model = load_model(spec)
    if recipe.perturb_weights:
        _perturb(model, recipe.perturb_weights)
    input_shape, num_classes = model_info(model)
    classification = spec.metric.is_accuracy
    data.check_fits(input_shape=input_shape, num_classes=num_classes, model=spec.name,
                    data=str(spec.data), classification=classification)
    if recipe.needs_finetune and not classification and not getattr(model, "loss", None):
        raise UserInputError(
            f"model {spec.name}: recipe {recipe.name} fine-tunes, and the model is not "
            "compiled: save it compiled (or compile it in its module:function) so its loss "
            "is known")
    keras_top1 = None
    if recipe.is_reference and classification:
        keras_top1 = np.argmax(model.predict(data.x_test, batch_size=spec.static_batch or 256,
                                             verbose=0), axis=-1)
    finetune_seconds = 0.0
    logs = tensorboard_dir(spec.name, recipe.name)
    mixed = None
    if recipe.keep_float is not None:
        from compressgate.backends import tf_diagnose

        try:  # before any fine-tune: a misspelt layer costs nothing
            tf_diagnose.check_keep_float(model, recipe, spec.name)
        except UserInputError as exc:  # this result fails; the run and report go on
            return Artifact(None, error=str(exc))
    try:
        if recipe.needs_finetune:
            start = time.perf_counter()
            # Fine-tune at a dynamic batch even when the model converts at a static one.
            trainable = _with_batch(model, None) if spec.static_batch else model
            if recipe.qat:
                trainable = _qat(trainable, recipe, data, logs)
            if recipe.prune is not None:
                trainable = _prune(trainable, recipe, data, logs)
            model = _with_batch(trainable, spec.static_batch) if spec.static_batch else trainable
            finetune_seconds = time.perf_counter() - start
        start = time.perf_counter()
        if recipe.keep_float is not None:
            mixed = tf_diagnose.convert_keep_float(model, recipe, data, spec)
            tflite = mixed.tflite
        else:
            tflite = _convert(model, recipe, data)
        convert_seconds = time.perf_counter() - start
    except RecipeUnsupported as exc:
        return Artifact(None, error=str(exc), finetune_seconds=finetune_seconds)
    return Artifact(tflite, None, finetune_seconds, convert_seconds, keras_top1,
                    kept_float=mixed.kept if mixed else None,
                    search=mixed.search if mixed else None)



def describe(model) -> dict:
    """What ``compressgate init`` writes into a starter config about ``model``."""
    tfmot = _tfmot()
    layers = [{"name": layer.name, "class": type(layer).__name__,
               "params": int(layer.count_params())} for layer in model.layers]
    qat_error = None
    try:
        with _quiet():
            tfmot.quantization.keras.quantize_model(_keras().models.clone_model(model))
    except Exception as exc:  # tfmot raises RuntimeError/ValueError for unsupported layers
        qat_error = _first_line(exc)
    recurrent = [layer.name for layer in model.layers
                 if type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN", "RNN")]
    return {"input_shape": [None if d is None else int(d) for d in model.input_shape],
            "output_units": int(model.output_shape[-1]), "params": int(model.count_params()),
            "layers": layers, "qat_error": qat_error, "recurrent": recurrent,
            "compiled": getattr(model, "loss", None) is not None}
