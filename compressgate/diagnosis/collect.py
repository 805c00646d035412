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
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Recipe

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
    return Diagnosis(model, name, tuple(analysis.rank(tensors)), tuple(tensors), sparsity,
                     row, _search(outcome.search if outcome is not None else None),
                     tuple(problems), time_goes)
