"""A float ``.tflite`` as the model (exported from any framework): no Keras, no TensorFlow.

The file is its own float reference; litert-quantizer recipes quantize it; recipes that
need the Keras model (the TF converter's PTQ, QAT, pruning) are refused in one line.
"""

from __future__ import annotations

import time
from pathlib import Path

from compressgate.backends import litert_quant
from compressgate.backends.protocol import Artifact, RecipeUnsupported
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.project.models import Dataset, ModelSpec
from compressgate.recipes import Recipe


def read(spec: ModelSpec) -> bytes:
    """The source file's bytes, checked to be a float model LiteRT loads."""
    path = spec.model.path
    try:
        tflite = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the model ({exc.strerror})") from None
    check_float(tflite, name=str(path))
    return tflite


def check_float(tflite: bytes, *, name: str) -> None:
    """One line when a file offered as the model (the float reference) is quantized:
    such a file is gated as a candidate of its float model instead."""
    state = flatbuffer.precision(tflite, name=name)
    if state.quantized_tensors:
        raise UserInputError(
            f"{name}: already quantized ({state.quantized_tensors} tensors carry "
            "quantization scales); a .tflite model source must be the float model: gate "
            "this file as a candidate of its float model ([models.NAME.candidates.NAME] "
            f'file = "{Path(name).name}", see "Candidates" in the README)')


def describe(tflite: bytes, *, name: str) -> dict:
    """Input shape (batch -1 -> None), output units and weight count, for ``init`` and
    for checking the data fits."""
    from compressgate.measure.litert import interpreter

    interp = interpreter(tflite, name=name)
    inputs, outputs = interp.get_input_details(), interp.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserInputError(f"{name}: {len(inputs)} inputs and {len(outputs)} outputs; "
                             "compressgate gates models with one of each")
    shape = [int(d) for d in inputs[0]["shape_signature"]]
    info = flatbuffer.inspect(tflite, name=name)
    return {"input_shape": [None if d < 0 else d for d in shape],
            "output_units": int(outputs[0]["shape"][-1]), "params": info.weight_elements,
            "ops": info.op_names}


def compress(spec: ModelSpec, recipe: Recipe, data: Dataset) -> Artifact:
    """``recipe`` on the ``.tflite`` file of ``spec``."""
    if recipe.needs_keras:
        return Artifact(None, error=spec.unsupported(recipe))
    tflite = read(spec)
    info = describe(tflite, name=str(spec.model.path))
    batch = info["input_shape"][0]
    data.check_fits(input_shape=tuple(info["input_shape"]), num_classes=info["output_units"],
                    model=spec.name, data=str(spec.data),
                    classification=spec.metric.is_accuracy)
    if batch is not None and spec.static_batch != batch:
        raise UserInputError(f"model {spec.name}: {spec.model.path} has a fixed batch of "
                             f"{batch}: set static_batch = {batch} for it in the config")
    if recipe.is_reference:
        return Artifact(tflite)
    start = time.perf_counter()
    try:
        out = litert_quant.quantize(tflite, recipe, data, name=str(spec.model.path))
    except RecipeUnsupported as exc:
        return Artifact(None, error=str(exc))
    return Artifact(out, convert_seconds=time.perf_counter() - start)
