"""Collect a ``Diagnosis`` of one model x recipe: its row, the quantization debugger's
per-layer error (int8 PTQ recipes), per-tensor weight sparsity, the keep_float search.

Whatever cannot be diagnosed becomes a one-line problem in the report; the rest is
still collected. TensorFlow is reached only through ``compressgate.backends``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressgate.backends import analysis
from compressgate.backends.analysis import LayerError, Search, Step, TensorError
from compressgate.diagnosis import advice
from compressgate.diagnosis.advice import Advice
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import REFERENCE, Recipe

Debugger = Callable[[Any, Recipe, Any], tuple[list[dict], list[str]]]


@dataclass(frozen=True)
class Diagnosis:
    """Everything the diagnosis report shows; ``problems`` are one-line reasons for what
    could not be diagnosed (the rest of the report is still written)."""

    model: str
    recipe: str
    layers: tuple[LayerError, ...] = ()
    tensors: tuple[TensorError, ...] = ()
    sparsity: tuple[tuple[str, int, int], ...] = ()  # (weight tensor, elements, zeros)
    row: ResultRow | None = None
    search: Search | None = None
    problems: tuple[str, ...] = ()
    # The ops XNNPACK left to the built-in kernels and their share of the time ("": none
    # measured).
    time_goes: str = ""
    # (layer, or tensor when no layer is known; widest / narrowest channel range) of the
    # float model's weights, most imbalanced first.
    imbalances: tuple[tuple[str, float], ...] = ()
    # The recovery recipe to try when an int8 recipe loses more than its promise.
    advice: Advice | None = None


def _tf_debugger(spec, recipe: Recipe, data) -> tuple[list[dict], list[str]]:
    from compressgate.backends.tf.debugger import diagnose

    return diagnose(spec, recipe, data)


def debuggable(recipe: Recipe) -> str | None:
    """Why the quantization debugger cannot explain ``recipe`` (None when it can)."""
    if recipe.is_int8_ptq:
        return None
    if recipe.candidate is not None:
        return f"{recipe.name} is a candidate made by another pipeline: the quantization " \
               "debugger re-runs the TF converter's int8 PTQ, which made no byte of it"
    if recipe.litert_recipe is not None:
        return f"recipe {recipe.name} is quantized by litert-quantizer " \
               f"({recipe.litert_recipe}): the quantization debugger explains the TF " \
               "converter's int8 PTQ only"
    if recipe.quantization != "int8":
        return f"recipe {recipe.name} is not full-integer int8 (quantization " \
               f"{recipe.quantization}): no per-layer quantization error to report"
    if recipe.dfq is not None or recipe.per_tensor:
        return f"recipe {recipe.name} is not the converter's plain per-channel int8 PTQ " \
               "(data-free quantization or per-tensor weights): the quantization debugger " \
               "explains that PTQ only"
    stages = [name for name, on in (("pruning", recipe.prune is not None),
                                    ("clustering", recipe.cluster is not None),
                                    ("QAT", recipe.qat)) if on]
    return f"recipe {recipe.name} fine-tunes ({', '.join(stages)}): " \
           "the quantization debugger explains calibrated PTQ only"


def _search(doc: dict[str, Any] | None) -> Search | None:
    if not doc:
        return None
    steps = tuple(Step(tuple(s["kept_float"]), s["accuracy"], s["drop_pts"], s["size_bytes"])
                  for s in doc["steps"])
    return Search(doc["budget_pts"], doc["float_accuracy"], steps)


def imbalances(float_tflite: bytes | None, layer_names: list[str],
               *, name: str) -> tuple[tuple[str, float], ...]:
    """Channel-range imbalance of each weight tensor of the float file, by the Keras
    layer its name mentions (the worst tensor of a layer), most imbalanced first."""
    if float_tflite is None:
        return ()
    found: dict[str, float] = {}
    for tensor, values, axis in flatbuffer.named_kernels(float_tflite, name=name):
        where = analysis.layer_of(tensor, layer_names) or tensor
        ratio = advice.imbalance(advice.channel_ranges(values, axis))
        found[where] = max(ratio, found.get(where, 1.0))
    return tuple(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def _advise(runner, model: str, recipe: Recipe, row: ResultRow | None,
            layers: list[LayerError], names: list[str], problems: list[str]
            ) -> tuple[tuple[tuple[str, float], ...], Advice | None]:
    """The float weights' imbalances and, for an int8 recipe, the advice."""
    if not advice.is_int8(recipe):
        return (), None
    try:
        reference = runner.outcome(model, runner.recipe(model, REFERENCE))
        found = imbalances(reference.tflite, names, name=f"{model} x {REFERENCE}")
    except UserInputError as exc:
        problems.append(f"{model} x {REFERENCE}: no float weights to compare ({exc})")
        found = ()
    keepable = set(analysis.candidates(layers))
    return found, advice.advise(
        drop_pts=row.accuracy_drop_pts if row is not None else None,
        promise_pts=recipe.promise.max_drop_pts,
        layers=[(e.name, e.rmse_over_scale) for e in layers if e.name in keepable],
        imbalances=dict(found), current=recipe.name, order=names)


def collect(runner, model: str, recipe: str | Recipe, *,
            debugger: Debugger = _tf_debugger) -> Diagnosis:
    """Everything the diagnosis report of ``model`` x ``recipe`` shows."""
    resolved = runner.recipe(model, recipe)
    name = resolved.name
    problems: list[str] = []
    row: ResultRow | None = None
    outcome = None
    try:
        outcome = runner.outcome(model, resolved)
        row = runner.row(model, resolved)
    except UserInputError as exc:
        problems.append(f"{model} x {name}: no result ({exc})")
    if outcome is not None and not outcome.converted:
        problems.append(f"{model} x {name}: not converted ({outcome.error})")
    tensors: list[analysis.TensorError] = []
    names: list[str] = []
    reason = debuggable(resolved)
    if reason:
        problems.append(f"{model} x {name}: {reason}")
    else:
        try:
            rows, names = debugger(runner.spec(model), resolved, runner.data(model))
            tensors = analysis.tensor_errors(rows, names)
        except UserInputError as exc:
            problems.append(str(exc))
    sparsity: tuple[tuple[str, int, int], ...] = ()
    if outcome is not None and outcome.tflite is not None:
        weights = flatbuffer.graph(outcome.tflite, name=f"{model} x {name}").weights
        sparsity = tuple((w.name, w.elements, w.zeros) for w in weights)
    time_goes = ""
    if row is not None and row.coverage is not None:
        time_goes = runner.where_time_goes(model, resolved)
    layers = analysis.rank(tensors)
    found, advised = _advise(runner, model, resolved, row, layers, names, problems)
    return Diagnosis(model, name, tuple(layers), tuple(tensors), sparsity,
                     row, _search(outcome.search if outcome is not None else None),
                     tuple(problems), time_goes, found, advised)
