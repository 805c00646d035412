"""Which recovery recipe to try when an int8 recipe loses more than its promise.

Pure decisions on plain numbers: the per-layer quantization error (RMSE / scale, worst
first) and how far the per-channel ranges of each layer's float weights lie apart. No
TensorFlow, no files. The names it gives are hints: ``dfq_int8`` (cross-layer
equalization) lands with issue 24's data-free quantization; see ``RECOVERY_RECIPES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from compressgate.recipes import Recipe

# A weight tensor whose per-output-channel ranges (max |w|) differ by more than this
# factor: under one int8 scale set by the widest channel, a channel 100x narrower spans
# 127 / 100 ~ 1.3 steps a sign, so its weights round to -1, 0 or 1. Per-channel weight
# scales escape that, but the layer's output is quantized per tensor and channels with
# small weights give small outputs: the same crush, one layer later. This is the case
# data-free quantization's cross-layer equalization (Nagel et al. 2019) rescales away.
RANGE_IMBALANCE = 100.0
# The worst layer's RMSE / scale at least this many times the next layer's: one layer
# carries most of the error, so keeping it float recovers most of the drop at the size
# of one layer. Below it the error is spread (a heuristic: at 4x the next layer's error
# is a quarter of the worst, no longer the thing to fix first).
DOMINANT_ERROR = 4.0
# Every recipe name the advice may give (``keep_float`` is a recipe field, not a name).
RECOVERY_RECIPES = ("dfq_int8", "qat_int8", "lq_int8_mse")
KEEP_FLOAT = "keep_float"


@dataclass(frozen=True)
class Advice:
    """What to try: a recipe name (or ``keep_float``), the layer it is about (the one
    with the largest error; None without per-layer error), and why, in one line."""

    recipe: str
    layer: str | None
    why: str

    def line(self) -> str:
        if self.recipe == KEEP_FLOAT:
            return f'try keep_float = ["{self.layer}"]: {self.why}'
        return f"try {self.recipe}: {self.why}"


def channel_ranges(values: np.ndarray, axis: int | None) -> np.ndarray:
    """max |w| of each output channel along ``axis`` (None: the tensor as one channel)."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    if axis is None or magnitude.ndim == 0:
        return np.array([magnitude.max(initial=0.0)])
    return np.moveaxis(magnitude, axis, 0).reshape(magnitude.shape[axis], -1).max(
        axis=1, initial=0.0)


def imbalance(ranges: Iterable[float]) -> float:
    """Widest over narrowest channel range; all-zero channels (dead or pruned) are left
    out, they lose nothing to quantization. 1.0 with fewer than two live channels."""
    live = [float(r) for r in ranges if r > 0]
    return max(live) / min(live) if len(live) > 1 else 1.0


def is_int8(recipe: Recipe) -> bool:
    """Whether the recipe computes in int8, what the advice is for."""
    return recipe.quantization == "int8" or (recipe.litert_recipe or "").startswith(
        "static_wi8_ai8")


def _feeding(layer: str, order: Sequence[str], imbalances: Mapping[str, float]) -> str | None:
    """The nearest layer with weights before ``layer`` in the model's order: the one whose
    output ``layer`` reads (in a chain; a hint elsewhere)."""
    before = list(order[:order.index(layer)]) if layer in order else []
    return next((name for name in reversed(before) if name in imbalances), None)


def advise(*, drop_pts: float | None, promise_pts: float, layers: Sequence[tuple[str, float]],
           imbalances: Mapping[str, float], current: str,
           order: Sequence[str] = ()) -> Advice | None:
    """The recovery recipe for a drop beyond the promise (None within it, or unknown).

    ``layers``: (layer, RMSE / scale) of the layers keep_float could keep, worst first;
    ``imbalances``: layer (or tensor) -> channel-range imbalance of its float weights;
    ``current``: the recipe diagnosed, never advised again; ``order``: the model's layer
    names in order (which layer feeds the worst one).

    In order: the worst layer, or the one feeding it, has imbalanced weight channels ->
    ``dfq_int8``; one layer's error dominates -> ``keep_float`` of it; any layer has
    imbalanced channels -> ``dfq_int8`` (with per-channel weights the crushed channels are
    in that layer's per-tensor output, under half a step of its widest channel each: the
    per-layer error cannot show them); else ``qat_int8`` or ``lq_int8_mse``.
    """
    if drop_pts is None or drop_pts <= promise_pts:
        return None
    worst = layers[0] if layers else None
    equalize = current != "dfq_int8"
    if equalize and worst is not None:
        for name in (worst[0], _feeding(worst[0], order, imbalances)):
            if name is not None and imbalances.get(name, 1.0) > RANGE_IMBALANCE:
                whose = "its" if name == worst[0] else f"the layer feeding it, {name}'s,"
                return Advice("dfq_int8", worst[0], f"{worst[0]} has the largest error "
                              f"(RMSE/scale {worst[1]:.3g}) and {whose} weight channel "
                              f"ranges differ {imbalances[name]:.0f}x (> "
                              f"{RANGE_IMBALANCE:.0f}x): cross-layer equalization evens them")
    if worst is not None:
        second = layers[1][1] if len(layers) > 1 else 0.0
        if worst[1] >= DOMINANT_ERROR * second:
            next_ = f"{DOMINANT_ERROR:.0f}x or more the next layer's ({second:.3g})" \
                if len(layers) > 1 else "the only layer with error"
            return Advice(KEEP_FLOAT, worst[0], f"{worst[0]} has the largest error "
                          f"(RMSE/scale {worst[1]:.3g}), {next_}")
    spread = max(imbalances.items(), key=lambda kv: (kv[1], kv[0]), default=None)
    if equalize and spread is not None and spread[1] > RANGE_IMBALANCE:
        largest = (f"largest error: {worst[0]}, RMSE/scale {worst[1]:.3g}"
                   if worst is not None else "no per-layer error for this recipe")
        return Advice("dfq_int8", worst[0] if worst else None,
                      f"weight channel ranges of {spread[0]} differ {spread[1]:.0f}x (> "
                      f"{RANGE_IMBALANCE:.0f}x), its narrow channels crushed in its int8 "
                      f"output where per-layer error cannot show them ({largest}): "
                      "cross-layer equalization evens them")
    # Spread error: train the weights to int8's grid, or (no training) choose the weight
    # scales by MSE instead of min-max.
    others = [r for r in ("qat_int8", "lq_int8_mse") if r != current]
    where = (f"the error is spread (largest: {worst[0]}, RMSE/scale {worst[1]:.3g}; next "
             f"{layers[1][1]:.3g})" if worst is not None else
             "no per-layer error for this recipe" + (
                 "" if current == "dfq_int8" else ", no weight channel ranges more than "
                 f"{RANGE_IMBALANCE:.0f}x apart"))
    alternative = f" (or {others[1]}, without training)" if len(others) > 1 else ""
    return Advice(others[0], worst[0] if worst else None, f"{where}{alternative}")
