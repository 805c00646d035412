"""TensorFlow side of diagnosis and mixed precision: TFLite's ``QuantizationDebugger``
for per-layer error, and int8 conversion with chosen Keras layers kept float.

PTQ keeps layers float through the converter's selective quantization: calibrate only,
then ``mlir_quantize`` with the layers' op outputs denylisted (the call the debugger's
``get_nondebug_quantized_model`` makes, here with int8 input and output as the int8
recipes promise). The result runs those ops in float between DEQUANTIZE and QUANTIZE.
QAT annotates every layer but the kept ones before ``quantize_apply``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

import numpy as np

from compressgate.backends import tf as backend
from compressgate.diagnosis import analysis
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer, litert
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe


@dataclass(frozen=True)
class Mixed:
    tflite: bytes
    kept: tuple[str, ...]
    search: dict | None = None


def layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def check_keep_float(model, recipe: Recipe, model_name: str) -> tuple[str, ...] | None:
    """The recipe's listed layers, checked against the model's (None for ``auto``)."""
    if recipe.keep_float in (None, "auto"):
        return None
    return analysis.resolve_keep_float(recipe.keep_float, layer_names(model),
                                        model=model_name, recipe=recipe.name)


def quantize_model_keep_float(model, recipe: Recipe):
    """QAT on every layer but the ones ``recipe.keep_float`` names."""
    tfmot = backend._tfmot()
    keras = backend._keras()
    kept = set(recipe.keep_float or ())

    def annotate(layer):
        if layer.name in kept or isinstance(layer, keras.layers.InputLayer):
            return layer
        return tfmot.quantization.keras.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    return tfmot.quantization.keras.quantize_apply(annotated)


def _debug_rows(data: Dataset, recipe: Recipe):
    """The real calibration rows: what the debugger measures error on (a planted
    calibration fault changes only what the converter calibrates with)."""
    rows = data.x_calib[: recipe.calibration_samples].astype(np.float32)

    def generate():
        for row in rows:
            yield [row[None]]

    return generate


def _debugger(model, recipe: Recipe, data: Dataset):
    tf = backend._tf()
    converter = backend._converter(model, recipe, data)
    try:
        with backend._quiet():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=_debug_rows(data, recipe))
    except Exception as exc:  # the converter and debugger raise many types
        raise backend.RecipeUnsupported(
            f"QuantizationDebugger cannot handle this model: "
            f"{backend._converter_reason(exc)}") from None
    return debugger


def _quantize(calibrated: bytes, nodes: list[str]) -> bytes:
    tf = backend._tf()
    from tensorflow.lite.python import convert

    try:
        with backend._quiet():
            return convert.mlir_quantize(calibrated, fully_quantize=True,
                                         input_data_type=tf.int8, output_data_type=tf.int8,
                                         denylisted_nodes=nodes or None)
    except Exception as exc:
        raise backend.RecipeUnsupported(
            f"selective quantization failed: {backend._converter_reason(exc)}") from None


def _nodes(calibrated: bytes, layers: tuple[str, ...], names: list[str],
           where: str = "") -> list[str]:
    """The op outputs to denylist; every kept layer must have some."""
    outputs = flatbuffer.graph(calibrated).op_outputs
    missing = analysis.without_ops(layers, outputs, names)
    if missing:
        having = [n for n in names if not analysis.without_ops([n], outputs, names)]
        raise backend.RecipeUnsupported(
            f"{where}keep_float layer {missing[0]!r} has no op of its own in the converted model "
            f"(removed, or not named after it); layers with ops: {', '.join(having)}")
    return analysis.nodes_of(layers, outputs, names)


def layer_statistics(model, recipe: Recipe, data: Dataset, debugger=None) -> list[dict]:
    """The debugger's per-op statistics (its CSV dump as rows) on the calibration split,
    for the model as the recipe converts it (layers it keeps float are not in them)."""
    debugger = debugger or _debugger(model, recipe, data)
    kept = recipe.keep_float if isinstance(recipe.keep_float, tuple) else ()
    if kept:
        tf = backend._tf()
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=_nodes(debugger.calibrated_model, kept, layer_names(model)))
    try:
        with backend._quiet():
            debugger.run()
            dump = io.StringIO()
            debugger.layer_statistics_dump(dump)
    except Exception as exc:
        raise backend.RecipeUnsupported(
            f"QuantizationDebugger failed: {backend._first_line(exc)}") from None
    return list(csv.DictReader(io.StringIO(dump.getvalue())))


def convert_keep_float(model, recipe: Recipe, data: Dataset, spec: ModelSpec) -> Mixed:
    """Full-integer PTQ with ``recipe.keep_float`` layers float; ``auto`` searches them.

    The search measures accuracy on the train and calibration splits (every row but the
    test split the gate judges; the calibration split alone is too small to resolve a
    2-point budget on the small fixtures) against the Keras model's accuracy there, and
    stops at the first set of layers whose drop is below the recipe's ``max_drop_pts``.
    """
    names = layer_names(model)
    if recipe.keep_float != "auto":
        kept = analysis.resolve_keep_float(recipe.keep_float or (), names,
                                            model=spec.name, recipe=recipe.name)
        converter = backend._converter(model, recipe, data)
        converter._experimental_calibrate_only = True
        try:
            with backend._quiet():
                calibrated = converter.convert()
        except Exception as exc:
            raise backend.RecipeUnsupported(
                f"converter failed: {backend._converter_reason(exc)}") from None
        where = f"model {spec.name}, recipe {recipe.name}: "
        return Mixed(_quantize(calibrated, _nodes(calibrated, kept, names, where)), kept)

    debugger = _debugger(model, recipe, data)
    rows = layer_statistics(model, recipe, data, debugger)
    ranked = analysis.rank(analysis.tensor_errors(rows, names))
    candidates = analysis.candidates(ranked)
    calibrated = debugger.calibrated_model
    x = np.concatenate([data.x_train, data.x_calib]).astype(np.float32)
    y = np.concatenate([data.y_train, data.y_calib])
    keras_pred = model.predict(x, batch_size=spec.static_batch or 256, verbose=0)
    float_accuracy = float(np.mean(np.argmax(keras_pred, axis=-1) == y))
    models: dict[tuple[str, ...], bytes] = {}

    def evaluate(kept: tuple[str, ...]) -> analysis.Step:
        models[kept] = _quantize(calibrated, _nodes(calibrated, kept, names))
        top1 = np.argmax(litert.predict(models[kept], x, batch=spec.static_batch), axis=-1)
        return analysis.step(kept, float(np.mean(top1 == y)), float_accuracy,
                              len(models[kept]))

    search = analysis.search_keep_float(candidates, evaluate,
                                         budget_pts=recipe.promise.max_drop_pts,
                                         float_accuracy=float_accuracy)
    doc = {"split": "train+calib", "budget_pts": search.budget_pts,
           "float_accuracy": float_accuracy, "fits": search.fits,
           "ranking": candidates, "steps": [asdict(s) for s in search.steps]}
    return Mixed(models[search.chosen.kept_float], search.chosen.kept_float, doc)


def diagnose(spec: ModelSpec, recipe: Recipe, data: Dataset) -> tuple[list[dict], list[str]]:
    """(debugger rows, Keras layer names) for a PTQ int8 recipe on ``spec``'s model."""
    if recipe.quantization != "int8" or recipe.qat or recipe.prune is not None:
        raise UserInputError(
            f"model {spec.name}, recipe {recipe.name}: the quantization debugger needs an "
            f"int8 PTQ recipe (quantization int8, no QAT, no pruning)")
    backend.deterministic()
    model = backend.load_model(spec.model_path)
    names = layer_names(model)
    if recipe.keep_float not in (None, "auto"):
        analysis.resolve_keep_float(recipe.keep_float, names, model=spec.name,
                                     recipe=recipe.name)
    try:
        return layer_statistics(model, recipe, data), names
    except backend.RecipeUnsupported as exc:
        raise UserInputError(f"model {spec.name}, recipe {recipe.name}: {exc}") from None
