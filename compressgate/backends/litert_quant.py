"""Float ``.tflite`` -> quantized ``.tflite`` with litert-quantizer (no TensorFlow).

litert-quantizer 0.11 fails quietly in several ways (measured, see issue 17): a model
whose op codes are only in the deprecated field comes back unquantized, an already
quantized or float16 model only warns or is left as it is, and static calibration needs
a ``serving_default`` SignatureDef. Each becomes ``RecipeUnsupported`` with one line
naming it, so the gate's conversion check fails instead of passing an unchanged model.
A recipe's ``litert_algorithm`` (MSE, OCTAV, GPTQ) replaces min-max for the weight ops
it covers; an installed package without it, or a model without those ops, is one line.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import warnings

import numpy as np

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.measure import flatbuffer
from compressgate.project.models import Dataset
from compressgate.recipes import LITERT_ALGORITHMS, Recipe

PACKAGE = "litert-quantizer"
SIGNATURE = "serving_default"
_INSTALL = "pip install 'compressgate[litert]'"


def version() -> str | None:
    """The installed litert-quantizer's version (part of a litert recipe's cache key)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def _modules():
    try:
        from litert_quantizer import quantizer, recipe
    except ImportError as exc:
        raise RecipeUnsupported(
            f"{PACKAGE} is not installed or cannot be imported ({exc}): {_INSTALL}") from None
    return quantizer, recipe


def check_input(tflite: bytes, recipe: Recipe, *, name: str) -> flatbuffer.Precision:
    """Refuse what litert-quantizer would pass through unquantized."""
    state = flatbuffer.precision(tflite, name=name)
    if state.quantized_tensors:
        raise RecipeUnsupported(
            f"{name}: already quantized ({state.quantized_tensors} tensors carry "
            f"quantization scales); {PACKAGE} needs the float32 model")
    if state.float16_weights:
        raise RecipeUnsupported(
            f"{name}: {state.float16_weights} weight tensors are float16; {PACKAGE} leaves "
            "them untouched: give it the float32 model")
    if calibrates(recipe) and SIGNATURE not in state.signatures:
        what = recipe.litert_recipe if is_static(recipe) else recipe.litert_algorithm
        raise RecipeUnsupported(
            f"{name}: no {SIGNATURE!r} SignatureDef (has {list(state.signatures)}); "
            f"{what} calibrates through it: export the model with one")
    return state


def is_static(recipe: Recipe) -> bool:
    return (recipe.litert_recipe or "").startswith("static_")


def calibrates(recipe: Recipe) -> bool:
    """Whether the recipe reads the calibration split: static activations, or a weight
    algorithm that does (GPTQ's Hessian)."""
    algorithm = LITERT_ALGORITHMS.get(recipe.litert_algorithm or "")
    return is_static(recipe) or (algorithm is not None and algorithm.calibrates)


def algorithm_key(recipe: Recipe) -> str | None:
    """The installed package's key for ``recipe.litert_algorithm`` (None: min-max as the
    litert recipe has it); a package without it is one line, not an error."""
    if recipe.litert_algorithm is None:
        return None
    from litert_quantizer import algorithm_manager

    key = LITERT_ALGORITHMS[recipe.litert_algorithm].key
    known = {member.value for member in algorithm_manager.AlgorithmName}
    if key not in known:
        raise RecipeUnsupported(
            f"{PACKAGE} {version()} has no algorithm {key!r} ({recipe.name}: "
            f"litert_algorithm {recipe.litert_algorithm}); it has {', '.join(sorted(known))}")
    return key


def with_algorithm(plan: list[dict], recipe: Recipe, key: str, model_ops: tuple[str, ...],
                   *, name: str) -> list[dict]:
    """``plan`` (a litert recipe: whole-model ``*`` entries) with ``key`` for the weight
    ops of the model it covers; later entries win in litert-quantizer, so every other op
    keeps the plan's min-max (an algorithm that covers few ops would otherwise leave the
    rest float)."""
    from litert_quantizer import algorithm_manager, qtyping

    wanted = LITERT_ALGORITHMS[recipe.litert_algorithm or ""].ops
    covered = []
    for op in wanted:
        try:
            if algorithm_manager.is_op_registered(key, qtyping.TFLOperationName(op)):
                covered.append(op)
        except ValueError:  # an op name this version does not know
            continue
    if not covered:
        raise RecipeUnsupported(
            f"{PACKAGE} {version()} has no {key} for {', '.join(wanted)} ({recipe.name}: "
            f"litert_algorithm {recipe.litert_algorithm})")
    present = [op for op in covered if op in model_ops]
    if not present:
        raise RecipeUnsupported(
            f"{name}: {PACKAGE} {version()} {key} quantizes {', '.join(covered)} weights; "
            f"the model has none (its ops: {', '.join(sorted(set(model_ops)))})")
    whole = [entry for entry in plan if entry.get("operation") == "*"]
    if not whole:
        raise RecipeUnsupported(f"{PACKAGE} recipe {recipe.litert_recipe} has no "
                                f"whole-model entry to apply {key} in")
    # As litert-quantizer does for "*": an op its policy refuses in this mode (weight-only
    # DEPTHWISE_CONV_2D in 0.11) keeps the plan's treatment.
    extra = []
    for entry in whole:
        config = qtyping.OpQuantizationConfig.from_dict(entry["op_config"])
        for op in present:
            try:
                algorithm_manager.check_op_quantization_config(
                    key, qtyping.TFLOperationName(op), config)
            except ValueError:
                continue
            extra.append({**entry, "operation": op, "algorithm_key": key})
    if not extra:
        raise RecipeUnsupported(
            f"{name}: {PACKAGE} {version()} allows {key} on none of {', '.join(present)} "
            f"in {recipe.litert_recipe}")
    return [*plan, *extra]


def _calibration(tflite: bytes, recipe: Recipe, data: Dataset) -> dict:
    """The calibration split as ``serving_default`` inputs, one row per call."""
    from compressgate.measure.litert import interpreter

    runner = interpreter(tflite).get_signature_runner(SIGNATURE)
    (input_name, detail), *others = runner.get_input_details().items()
    if others:
        raise RecipeUnsupported(f"{SIGNATURE} has {len(others) + 1} inputs; compressgate "
                                "feeds models with one")
    rows = data.x_calib[: recipe.calibration_samples].astype(np.float32)
    rows = rows * np.float32(recipe.calibration_scale)
    return {SIGNATURE: [{input_name: row[None].astype(detail["dtype"])} for row in rows]}


@contextlib.contextmanager
def _quiet():
    """litert-quantizer prints progress bars and warns through logging and warnings."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def quantize(tflite: bytes, recipe: Recipe, data: Dataset, *, name: str) -> bytes:
    """``tflite`` (float32) quantized with ``recipe.litert_recipe``."""
    assert recipe.litert_recipe is not None
    quantizer, recipes = _modules()
    key = algorithm_key(recipe)
    state = check_input(tflite, recipe, name=name)
    build = getattr(recipes, recipe.litert_recipe, None)
    if build is None:
        raise RecipeUnsupported(f"{PACKAGE} {version()} has no recipe "
                                f"{recipe.litert_recipe!r}")
    plan = build()
    if key is not None:
        ops = tuple(op.name for op in flatbuffer.inspect(tflite, name=name).ops)
        plan = with_algorithm(plan, recipe, key, ops, name=name)
    try:
        with _quiet():
            qt = quantizer.Quantizer(tflite)
            qt.load_quantization_recipe(plan)
            calibration = _calibration(tflite, recipe, data) if calibrates(recipe) else None
            if calibration is not None:
                calibration = qt.calibrate(calibration)
            out = bytes(qt.quantize(calibration, enable_progress_report=False)
                        .quantized_model)
    except RecipeUnsupported:
        raise
    except Exception as exc:  # the quantizer raises ValueError, AttributeError, ...
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RecipeUnsupported(f"{PACKAGE} failed: {type(exc).__name__}: {text}") from None
    misfit = flatbuffer.misfit_buffers(out, name=name)
    if misfit:  # measured: 0.11's GPTQ wrote digits_cnn's 128x1024 dense as int32 bytes
        more = f" (and {len(misfit) - 1} more)" if len(misfit) > 1 else ""
        raise RecipeUnsupported(
            f"{PACKAGE} {version()} wrote a corrupt {name} "
            f"({recipe.litert_algorithm or recipe.litert_recipe}): weight {misfit[0]}{more}")
    if out == tflite or flatbuffer.precision(out, name=name).quantized_tensors == 0:
        why = (f": its op codes {', '.join(state.deprecated_codes)} are only in the "
               "deprecated builtin-code field (an old converter's file); re-export it "
               "with a current converter") if state.deprecated_codes else ""
        raise RecipeUnsupported(f"{PACKAGE} returned {name} unquantized (no tensor "
                                f"quantized by {recipe.litert_recipe}){why}")
    return out
