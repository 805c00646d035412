"""Quantization-aware training beyond tfmot's default 8-bit scheme.

tfmot 0.8 refuses layers its registry has no ``QuantizeConfig`` for ("Layer conv1d ... is
not supported"). Here are configs for the ones users hit most: Conv1D (kernel and
activation; the kernel per tensor, as tfmot's Dense: its per-channel fake quantization
takes 2-D and 4-D tensors only), outputs of LayerNormalization,
Multiply and ELU (like tfmot's Add), and MaxPooling1D / UpSampling1D (which, like
tfmot's MaxPooling2D, keep their input's scale). Every other layer gets tfmot's own
config; a layer neither covers fails with one line naming it.
"""

from __future__ import annotations

import functools
import re

from compressgate.backends.protocol import RecipeUnsupported
from compressgate.backends.tf.env import (
    first_line,
    import_keras,
    import_tfmot,
    quiet,
    reserve_layer_names,
)

# Keras class -> (weight attributes, activation attributes) quantized like tfmot's Dense.
WEIGHTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Conv1D": (("kernel",), ("activation",)),
}
# Keras class -> whether its output is quantized (False: it keeps its input's scale).
OUTPUT_ONLY: dict[str, bool] = {
    "LayerNormalization": True, "Multiply": True, "ELU": True,
    "MaxPooling1D": False, "UpSampling1D": False,
}
COVERED = tuple(sorted({*WEIGHTED, *OUTPUT_ONLY}))

_REFUSED = re.compile(r"Layer ([^:]+):<class '(?:[\w.]*\.)?(\w+)'> is not supported")


@functools.cache
def configs() -> dict[str, type]:
    """The QuantizeConfig classes by name (built on first use: tfmot loads lazily)."""
    keras_q = import_tfmot().quantization.keras
    quantizers = keras_q.quantizers

    def activation_quantizer():
        return quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False,
                                                 symmetric=False, narrow_range=False)

    class CompressgateWeightsConfig(keras_q.QuantizeConfig):
        """Weights symmetric 8-bit per tensor, activations asymmetric 8-bit."""

        def __init__(self, weights: list[str], activations: list[str]) -> None:
            self.weights, self.activations = list(weights), list(activations)

        def get_weights_and_quantizers(self, layer):
            return [(getattr(layer, name), quantizers.LastValueQuantizer(
                num_bits=8, per_axis=False, symmetric=True, narrow_range=True))
                for name in self.weights]

        def get_activations_and_quantizers(self, layer):
            return [(getattr(layer, name), activation_quantizer())
                    for name in self.activations]

        def set_quantize_weights(self, layer, quantize_weights):
            for name, weight in zip(self.weights, quantize_weights, strict=True):
                setattr(layer, name, weight)

        def set_quantize_activations(self, layer, quantize_activations):
            for name, activation in zip(self.activations, quantize_activations, strict=True):
                setattr(layer, name, activation)

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {"weights": self.weights, "activations": self.activations}

    class CompressgateOutputConfig(keras_q.QuantizeConfig):
        """No weights; the output quantized (or left at its input's scale)."""

        def __init__(self, quantize_output: bool) -> None:
            self.quantize_output = quantize_output

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [activation_quantizer()] if self.quantize_output else []

        def get_config(self):
            return {"quantize_output": self.quantize_output}

    return {c.__name__: c for c in (CompressgateWeightsConfig, CompressgateOutputConfig)}


def config_for(layer):
    """Our QuantizeConfig for ``layer``, or None (tfmot's own, or its refusal)."""
    name = type(layer).__name__
    if name in WEIGHTED:
        weights, activations = WEIGHTED[name]
        return configs()["CompressgateWeightsConfig"](weights, activations)
    if name in OUTPUT_ONLY:
        return configs()["CompressgateOutputConfig"](OUTPUT_ONLY[name])
    return None


def refusal(exc: BaseException) -> str:
    """tfmot's error as one line naming the layer and what tfmot lacks."""
    text = first_line(exc)
    found = _REFUSED.search(text)
    if found:
        layer, cls = found.groups()
        return (f"layer {layer} ({cls}): tfmot's 8-bit QAT scheme has no QuantizeConfig "
                f"for {cls}, nor has compressgate (it adds {', '.join(COVERED)})")
    return text


def quantize(model, keep_float: tuple[str, ...] = (), scheme=None):
    """``model`` wrapped for QAT: every layer but ``keep_float`` annotated, with our
    configs where tfmot has none; a tfmot ``scheme`` (the preserving ones) as tfmot
    applies it. Raises ``RecipeUnsupported`` naming what cannot be."""
    tfmot = import_tfmot()
    keras = import_keras()
    keras_q = tfmot.quantization.keras
    kept = set(keep_float)
    ours = any(config_for(layer) is not None for layer in model.layers)

    def annotate(layer):
        if layer.name in kept or isinstance(layer, keras.layers.InputLayer):
            return layer
        return keras_q.quantize_annotate_layer(layer, config_for(layer))

    try:
        with quiet():
            reserve_layer_names(model)
            if scheme is not None:  # its own registry: our configs are not in it
                return keras_q.quantize_apply(keras_q.quantize_annotate_model(model), scheme)
            if not kept and not ours:  # tfmot's own path, as the bundled baselines had
                return keras_q.quantize_model(model)
            annotated = keras.models.clone_model(model, clone_function=annotate)
            with keras_q.quantize_scope(configs()):
                return keras_q.quantize_apply(annotated)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise RecipeUnsupported(f"tfmot QAT cannot quantize this model: {refusal(exc)}") \
            from None
