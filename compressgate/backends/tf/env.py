"""The TensorFlow backend's environment: the one module that imports TensorFlow, Keras 3,
tf-keras and tfmot, and the one that touches their private or experimental APIs.

Imports are lazy (``import_tf``, ``import_keras``, ``import_keras3``, ``import_tfmot``): importing
compressgate never loads TensorFlow. Private APIs used here, each behind one function:
tfmot's ``PruneRegistry._weight_names`` (``prunable``) and
``ClusteringRegistry._weight_names`` (``clusterable``), the converter's
``_experimental_calibrate_only`` (``calibrated_model``) and
``_experimental_disable_per_channel`` (per-tensor weights, ``make_converter``),
``tensorflow.lite.python.convert.mlir_quantize`` (``quantize_calibrated``), tf-keras's
per-graph layer-name counters (``reserve_layer_names``). Also here: the
converter a recipe configures (``make_converter``), determinism, and silencing the C++
side.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np

import compressgate  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.native import filtered_stderr
from compressgate.project.models import Dataset
from compressgate.recipes import Recipe

SEED = 1234


# What TensorFlow's C++ side prints on import whatever TF_CPP_MIN_LOG_LEVEL says: absl
# INFO lines (oneDNN is on, no CUDA driver, CPU features) and absl's note about them.
_IMPORT_NOISE = re.compile(
    r"^(I\d{4} .*|WARNING: All log messages before absl::InitializeLog\(\) is called.*"
    r"|To enable the following instructions:.*)$")


def _import_tensorflow() -> None:
    """Import TensorFlow with its import-time INFO lines dropped from file descriptor 2;
    anything else it writes there (warnings, errors) is passed on."""
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr(_IMPORT_NOISE):
        import tensorflow  # noqa: F401


def import_tf():
    _import_tensorflow()
    import tensorflow as tf

    return tf


def import_keras():
    _import_tensorflow()
    import absl.logging
    import tf_keras

    # tf-keras warns on every load that the saved optimizer has no slot variables.
    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf_keras


def import_keras3():
    """Keras 3 (``import keras``) on TensorFlow, for Keras 3 model sources: compressgate's
    own models are tf_keras (``TF_USE_LEGACY_KERAS`` only redirects ``tf.keras``)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _import_tensorflow()
    import keras

    return keras


def is_keras3_model(model) -> bool:
    """Whether ``model`` is a Keras 3 ``keras.Model`` (a subclass in the user's module
    too), not a tf_keras one; a Keras 3 model means Keras 3 is already imported."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, getattr(keras, "Model", ()))


def import_tfmot():
    _import_tensorflow()
    if "tensorflow_model_optimization" not in sys.modules and "keras" not in sys.modules:
        # tfmot's prune registry tries ``from keras.src.engine import base_layer``, which
        # Keras 3 lacks: it loaded all of Keras 3 (1.4 s per fine-tuning process) only to
        # fail and fall back. Refused at once instead, with the same fallback.
        sys.modules["keras"] = None  # type: ignore[assignment]
        try:
            import tensorflow_model_optimization  # noqa: F401
        finally:
            del sys.modules["keras"]
    import tensorflow_model_optimization as tfmot

    return tfmot


def import_quant_ops():
    """tfmot's fake-quantization ops module, through which all its quantizers go."""
    import_tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    return quant_ops


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
    tf = import_tf()
    keras = import_keras()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def rebuilt(model, config: dict):
    """``model`` rebuilt from an edited ``config`` of it, with its weights."""
    with import_tfmot().quantization.keras.quantize_scope():
        clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def with_batch(model, batch: int | None):
    """A clone of ``model`` whose input has batch dimension ``batch``, same weights."""
    config = model.get_config()
    for layer in config.get("layers", []):
        if layer["class_name"] == "InputLayer":
            shape = layer["config"]["batch_input_shape"]
            layer["config"]["batch_input_shape"] = (batch, *shape[1:])
    if "build_input_shape" in config:
        config["build_input_shape"] = (batch, *config["build_input_shape"][1:])
    return rebuilt(model, config)


def reserve_layer_names(model) -> None:
    """Move tf-keras's automatic layer names past ``model``'s own.

    A model loaded from a file keeps names such as ``conv2d_2`` while this session's
    counters restart at zero; tfmot's QAT transforms create unnamed layers (the Conv2D
    and DepthwiseConv2D a SeparableConv2D becomes) and wire its graph by name, so a
    clash silently connects the wrong tensors ("Inputs have incompatible shapes").
    """
    from tf_keras.src.backend import get_default_graph_uid_map

    counters = get_default_graph_uid_map()
    for layer in model.submodules:
        name = getattr(layer, "name", "")
        base, _, number = name.rpartition("_")
        if not (base and number.isdigit()):
            base, number = name, "0"
        key = ("", base)
        counters[key] = max(counters[key], int(number) + 1)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def prunable(layer) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    if not PruneRegistry.supports(layer) or not layer.trainable_weights:
        return False
    try:
        return bool(PruneRegistry._weight_names(layer))
    except KeyError:  # recurrent layers are registered apart, by cell
        return True


def clusterable(layer) -> bool:
    """Whether tfmot clusters any weight of ``layer`` (it accepts DepthwiseConv2D and
    BatchNormalization, but clusters none of their weights)."""
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    if not layer.trainable_weights or not ClusteringRegistry.supports(layer):
        return False
    try:
        return bool(ClusteringRegistry._weight_names(layer))
    except KeyError:  # recurrent layers are registered apart, by cell
        return True


def preserving_scheme(preserve: str, *, sparsity: bool):
    """tfmot's collaborative QAT scheme keeping pruning's zeros (``"sparsity"``) or
    clustering's shared values (``"clusters"``, with the zeros too when ``sparsity``)."""
    combine = import_tfmot().experimental.combine
    if preserve == "sparsity":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=sparsity)


def make_converter(model, recipe: Recipe, data: Dataset):
    """The converter ``recipe`` configures for ``model``, not yet run."""
    tf = import_tf()
    converter = _converter_for(model)
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
        if recipe.per_tensor:  # TF 2.21's lite.py hands it to mlir_quantize
            converter._experimental_disable_per_channel = True
        if recipe.keep_float is not None:  # the kept layers need float kernels
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        if not recipe.float_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif quant == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def _converter_for(model):
    """The TF converter of a tf_keras model, or of a Keras 3 model through the path Keras
    3's own LiteRT export takes (its ``ExportArchive`` written as a SavedModel, then
    ``from_saved_model``: the variables are frozen; ``from_keras_model`` traces with
    tf_keras)."""
    tf = import_tf()
    if not is_keras3_model(model):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    import functools
    import shutil
    import weakref

    keras = import_keras3()
    directory = tempfile.mkdtemp(prefix="compressgate-keras3-")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                         input_signature=[tf.TensorSpec(tuple(t.shape), t.dtype)
                                          for t in model.inputs])
    with quiet():
        archive.write_out(directory, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(directory)
    # The converter reads the SavedModel again when it converts.
    weakref.finalize(converter, shutil.rmtree, directory, ignore_errors=True)
    return converter


def converter_reason(exc: BaseException) -> str:
    """The converter's useful line (e.g. the op it could not quantize), not its preamble."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def calibrated_model(model, recipe: Recipe, data: Dataset) -> bytes:
    """The converter's calibrated, not yet quantized model (its private
    ``_experimental_calibrate_only``), for ``quantize_calibrated``."""
    converter = make_converter(model, recipe, data)
    converter._experimental_calibrate_only = True
    try:
        with quiet():
            return converter.convert()
    except Exception as exc:
        raise RecipeUnsupported(f"converter failed: {converter_reason(exc)}") from None


def quantize_calibrated(calibrated: bytes, nodes: list[str]) -> bytes:
    """Full-integer int8 quantization of a calibrated model with ``nodes`` (op outputs)
    left float: the private ``mlir_quantize`` the debugger's
    ``get_nondebug_quantized_model`` calls, here with int8 input and output."""
    tf = import_tf()
    from tensorflow.lite.python import convert

    try:
        with quiet():
            return convert.mlir_quantize(calibrated, fully_quantize=True,
                                         input_data_type=tf.int8, output_data_type=tf.int8,
                                         denylisted_nodes=nodes or None)
    except Exception as exc:
        raise RecipeUnsupported(
            f"selective quantization failed: {converter_reason(exc)}") from None
