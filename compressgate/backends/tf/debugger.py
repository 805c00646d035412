"""TFLite's ``QuantizationDebugger`` on a recipe's conversion: per-op quantization error
on the calibration split (what ``compressgate diagnose`` and the keep_float search read),
and the op outputs that keep chosen Keras layers float."""

from __future__ import annotations

import csv
import io

import numpy as np

from compressgate.backends import analysis
from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import (
    converter_reason,
    deterministic,
    first_line,
    import_tf,
    make_converter,
    quiet,
)
from compressgate.backends.tf.loading import layer_names, load_model
from compressgate.backends.tf.recurrent import for_conversion
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe


def _debug_rows(data: Dataset, recipe: Recipe):
    """The real calibration rows: what the debugger measures error on (a planted
    calibration fault changes only what the converter calibrates with)."""
    rows = data.x_calib[: recipe.calibration_samples].astype(np.float32)

    def generate():
        for row in rows:
            yield [row[None]]

    return generate


def debugger(model, recipe: Recipe, data: Dataset):
    """A ``QuantizationDebugger`` on the conversion ``recipe`` configures for ``model``."""
    tf = import_tf()
    converter = make_converter(model, recipe, data)
    try:
        with quiet():
            session = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=_debug_rows(data, recipe))
    except Exception as exc:  # the converter and debugger raise many types
        raise RecipeUnsupported(
            f"QuantizationDebugger cannot handle this model: "
            f"{converter_reason(exc)}") from None
    return session


def denylist(calibrated: bytes, layers: tuple[str, ...], names: list[str],
             where: str = "") -> list[str]:
    """The op outputs to denylist; every kept layer must have some."""
    outputs = flatbuffer.graph(calibrated).op_outputs
    missing = analysis.without_ops(layers, outputs, names)
    if missing:
        having = [n for n in names if not analysis.without_ops([n], outputs, names)]
        raise RecipeUnsupported(
            f"{where}keep_float layer {missing[0]!r} has no op of its own in the converted model "
            f"(removed, or not named after it); layers with ops: {', '.join(having)}")
    return analysis.nodes_of(layers, outputs, names)


def layer_statistics(model, recipe: Recipe, data: Dataset, session=None) -> list[dict]:
    """The debugger's per-op statistics (its CSV dump as rows) on the calibration split,
    for the model as the recipe converts it (layers it keeps float are not in them)."""
    session = session or debugger(model, recipe, data)
    kept = recipe.keep_float if isinstance(recipe.keep_float, tuple) else ()
    if kept:
        tf = import_tf()
        session.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=denylist(session.calibrated_model, kept, layer_names(model)))
    try:
        with quiet():
            session.run()
            dump = io.StringIO()
            session.layer_statistics_dump(dump)
    except Exception as exc:
        raise RecipeUnsupported(
            f"QuantizationDebugger failed: {first_line(exc)}") from None
    return list(csv.DictReader(io.StringIO(dump.getvalue())))


def diagnose(spec: ModelSpec, recipe: Recipe, data: Dataset) -> tuple[list[dict], list[str]]:
    """(debugger rows, Keras layer names) for a PTQ int8 recipe on ``spec``'s model."""
    if not recipe.is_int8_ptq:
        raise UserInputError(
            f"model {spec.name!r}, recipe {recipe.name}: the quantization debugger needs an "
            f"int8 PTQ recipe (quantization int8, no QAT, no pruning)")
    deterministic()
    model = load_model(spec)  # as compress does: a module:function, custom objects
    try:
        model = for_conversion(model, spec.static_batch, recipe)
    except RecipeUnsupported as exc:
        raise UserInputError(f"model {spec.name!r}, recipe {recipe.name}: {exc}") from None
    names = layer_names(model)
    if recipe.keep_float not in (None, "auto"):
        analysis.resolve_keep_float(recipe.keep_float, names, model=spec.name,
                                     recipe=recipe.name)
    try:
        return layer_statistics(model, recipe, data), names
    except RecipeUnsupported as exc:
        raise UserInputError(f"model {spec.name!r}, recipe {recipe.name}: {exc}") from None
