"""Float ``.tflite`` -> quantized ``.tflite`` with litert-quantizer (no TensorFlow).

litert-quantizer 0.11 fails quietly in several ways (measured, see issue 17): a model
whose op codes are only in the deprecated field comes back unquantized, an already
quantized or float16 model only warns or is left as it is, and static calibration needs
a ``serving_default`` SignatureDef. Each becomes ``RecipeUnsupported`` with one line
naming it, so the gate's conversion check fails instead of passing an unchanged model.
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
from compressgate.recipes import Recipe

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
    if is_static(recipe) and SIGNATURE not in state.signatures:
        raise RecipeUnsupported(
            f"{name}: no {SIGNATURE!r} SignatureDef (has {list(state.signatures)}); "
            f"{recipe.litert_recipe} calibrates through it: export the model with one")
    return state


def is_static(recipe: Recipe) -> bool:
    return (recipe.litert_recipe or "").startswith("static_")


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
    state = check_input(tflite, recipe, name=name)
    build = getattr(recipes, recipe.litert_recipe, None)
    if build is None:
        raise RecipeUnsupported(f"{PACKAGE} {version()} has no recipe "
                                f"{recipe.litert_recipe!r}")
    try:
        with _quiet():
            qt = quantizer.Quantizer(tflite)
            qt.load_quantization_recipe(build())
            calibration = _calibration(tflite, recipe, data) if is_static(recipe) else None
            if calibration is not None:
                calibration = qt.calibrate(calibration)
            out = bytes(qt.quantize(calibration, enable_progress_report=False)
                        .quantized_model)
    except RecipeUnsupported:
        raise
    except Exception as exc:  # the quantizer raises ValueError, AttributeError, ...
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise RecipeUnsupported(f"{PACKAGE} failed: {type(exc).__name__}: {text}") from None
    if out == tflite or flatbuffer.precision(out, name=name).quantized_tensors == 0:
        why = (f": its op codes {', '.join(state.deprecated_codes)} are only in the "
               "deprecated builtin-code field (an old converter's file); re-export it "
               "with a current converter") if state.deprecated_codes else ""
        raise RecipeUnsupported(f"{PACKAGE} returned {name} unquantized (no tensor "
                                f"quantized by {recipe.litert_recipe}){why}")
    return out
