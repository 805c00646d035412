"""Data-free quantization's recipe settings (``DataFree``) and the rules that per-tensor
weights and ``dfq`` keep in a recipe (``check_dfq``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from compressgate.recipes.validation import check_types, require

if TYPE_CHECKING:
    from compressgate.recipes.schema import Recipe


@dataclass(frozen=True)
class DataFree:
    """Data-free quantization (Nagel et al. 2019) before int8 PTQ: BatchNorm folded,
    cross-layer equalization of Conv2D/DepthwiseConv2D/Dense pairs joined by ReLU or
    ReLU6, bias absorption, bias correction (``backends/equalization.py``). The
    calibration split decides where ReLU6's clip forbids scaling and gives the inputs'
    means for bias correction."""

    equalize: bool = True
    absorb_bias: bool = True
    correct_bias: bool = True
    # The equalized float model's outputs against the original on the calibration split:
    # the largest difference allowed, relative to the largest output.
    max_float_change: float = 1e-5

    def __post_init__(self) -> None:
        check_types(self, "dfq.")
        require(self.max_float_change >= 0, "dfq.max_float_change", "a number >= 0",
                self.max_float_change)


def check_dfq(recipe: Recipe) -> None:
    """Per-tensor weights and data-free quantization are full-integer PTQ settings of
    the TF converter's path."""
    for name, on in (("per_tensor", recipe.per_tensor), ("dfq", recipe.dfq is not None)):
        if not on:
            continue
        require(recipe.quantization == "int8" and recipe.litert_recipe is None
                and recipe.candidate is None and recipe.keep_float is None,
                f"{recipe.name}: {name}", "an int8 recipe of the TF converter "
                "(quantization='int8', no litert_recipe, candidate or keep_float)",
                recipe.quantization)
    if recipe.dfq is not None:
        stages = [n for n, on in (("qat", recipe.qat), ("prune", recipe.prune),
                                  ("channel_prune", recipe.channel_prune),
                                  ("cluster", recipe.cluster)) if on]
        require(not stages, f"{recipe.name}: dfq", "post-training quantization only (no "
                "qat, prune, channel_prune or cluster stage)", stages)
