"""Mixed precision: int8 conversion with chosen Keras layers kept float, and the
``auto`` search that keeps the worst layers of the quantization diagnosis float.

PTQ keeps layers float through the converter's selective quantization: calibrate only,
then ``mlir_quantize`` with the layers' op outputs denylisted (the call the debugger's
``get_nondebug_quantized_model`` makes, here with int8 input and output as the int8
recipes promise). The result runs those ops in float between DEQUANTIZE and QUANTIZE.
QAT annotates every layer but the kept ones before ``quantize_apply`` (``qat.quantize``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from compressgate.backends import analysis
from compressgate.backends.tf.debugger import debugger, denylist, layer_statistics
from compressgate.backends.tf.env import (
    calibrated_model,
    quantize_calibrated,
)
from compressgate.backends.tf.loading import layer_names
from compressgate.measure import litert
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe


@dataclass(frozen=True)
class Mixed:
    tflite: bytes
    kept: tuple[str, ...]
    search: dict | None = None


def check_keep_float(model, recipe: Recipe, model_name: str) -> tuple[str, ...] | None:
    """The recipe's listed layers, checked against the model's (None for ``auto``)."""
    if recipe.keep_float in (None, "auto"):
        return None
    return analysis.resolve_keep_float(recipe.keep_float, layer_names(model),
                                        model=model_name, recipe=recipe.name)


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
        calibrated = calibrated_model(model, recipe, data)
        where = f"model {spec.name!r}, recipe {recipe.name}: "
        nodes = denylist(calibrated, kept, names, where)
        return Mixed(quantize_calibrated(calibrated, nodes), kept)

    session = debugger(model, recipe, data)
    rows = layer_statistics(model, recipe, data, session)
    ranked = analysis.rank(analysis.tensor_errors(rows, names))
    candidates = analysis.candidates(ranked)
    calibrated = session.calibrated_model
    x = np.concatenate([data.x_train, data.x_calib]).astype(np.float32)
    y = np.concatenate([data.y_train, data.y_calib])
    keras_pred = model.predict(x, batch_size=spec.static_batch or 256, verbose=0)
    float_accuracy = float(np.mean(np.argmax(keras_pred, axis=-1) == y))
    models: dict[tuple[str, ...], bytes] = {}

    def evaluate(kept: tuple[str, ...]) -> analysis.Step:
        models[kept] = quantize_calibrated(calibrated, denylist(calibrated, kept, names))
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
