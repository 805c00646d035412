"""Recurrent layers, also inside wrappers (Bidirectional, TimeDistributed, RNN(cell)),
and the model the converter gets for them.

TFLite converts a Keras recurrent layer it does not fuse (GRU, SimpleRNN, RNN over a
cell; LSTM becomes a fused kernel) into a WHILE loop over TensorLists, which needs a
static batch ("'tf.TensorListReserve' op requires element_shape to be static"). Full-
integer calibration (int8, int16x8) then crashes TensorFlow's calibrator on that loop (a
segfault since TF 2.14: tensorflow#62281, #75140), so those recipes convert the same
layers unrolled: the same weights and outputs, one set of ops per time step.
"""

from __future__ import annotations

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import first_line, rebuilt, with_batch
from compressgate.recipes import Recipe

RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
# Converted to a WHILE loop rather than a fused kernel.
LOOPED = ("GRU", "SimpleRNN", "RNN")
CALIBRATED = ("int8", "int16x8")


def _inner(layer) -> list:
    """The layers a wrapper holds (Bidirectional's two directions, TimeDistributed's
    layer, an RNN's cell)."""
    found = [getattr(layer, attr, None) for attr in ("forward_layer", "backward_layer")]
    if not any(found):
        found = [getattr(layer, "layer", None)]
    if type(layer).__name__ in RECURRENT:
        found.append(getattr(layer, "cell", None))
    return [f for f in found if f is not None and f is not layer]


def recurrent_class(layer) -> str | None:
    """The recurrent class ``layer`` is or wraps ("GRU" for Bidirectional(GRU))."""
    name = type(layer).__name__
    if name in RECURRENT:
        return name
    for inner in _inner(layer):
        found = recurrent_class(inner)
        if found:
            return found
    return None


def recurrent_layers(model) -> list[str]:
    """``model``'s recurrent layers as "name" or "name (GRU)" for a wrapper."""
    found = []
    for layer in model.layers:
        cls = recurrent_class(layer)
        if cls:
            found.append(layer.name if type(layer).__name__ == cls
                         else f"{layer.name} ({cls})")
    return found


def _unroll(node, looped: list[str]) -> None:
    """Set ``unroll`` on every looped recurrent layer of a (nested) Keras config."""
    if isinstance(node, dict):
        if node.get("class_name") in LOOPED and isinstance(node.get("config"), dict):
            node["config"]["unroll"] = True
            looped.append(node["config"].get("name", node["class_name"]))
        for value in node.values():
            _unroll(value, looped)
    elif isinstance(node, list):
        for value in node:
            _unroll(value, looped)


def for_conversion(model, static_batch: int | None, recipe: Recipe):
    """The model the converter gets: at ``static_batch`` when set, looped recurrent
    layers unrolled for calibrated recipes (same weights and outputs)."""
    if static_batch and model.input_shape[0] != static_batch:
        model = with_batch(model, static_batch)
    if recipe.quantization not in CALIBRATED or not recipe.optimize:
        return model
    config = model.get_config()
    looped: list[str] = []
    _unroll(config, looped)
    if not looped:
        return model
    try:
        return rebuilt(model, config)
    except (ValueError, TypeError) as exc:
        raise RecipeUnsupported(
            f"layer {looped[0]}: {recipe.quantization} calibration cannot run TFLite's WHILE "
            "loop (TensorFlow's calibrator crashes on it, tensorflow#62281) and unrolling it "
            f"failed ({first_line(exc)[:120]}): give the model's Input a fixed number of "
            "time steps") from None


def explain(error: str, model, static_batch: int | None, name: str) -> str:
    """A converter failure on a recurrent model at a dynamic batch, as the fix it needs
    (the converter's own advice, Select TF ops, would leave the model off the builtins)."""
    if static_batch or "tensorlist" not in error.lower().replace(" ", ""):
        return error
    layers = recurrent_layers(model)
    if not layers:
        return error
    return (f"converter failed on recurrent layer {layers[0]} at a dynamic batch (TensorList "
            f"ops need a static one): set static_batch = 1 for model {name} in the config")
