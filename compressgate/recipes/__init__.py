"""Recipes are data: a small typed config per recipe, in a registry users can extend.

A recipe describes *what* to do to a float Keras model (quantize, fine-tune with QAT,
prune); the TensorFlow backend decides *how*. Every field takes part in the cache key,
so changing a recipe re-runs exactly the results it determines. The schema
(``schema``; data-free quantization's settings in ``datafree``) and how its fields are
checked (``validation``), the registry
(``registry``) and the recipes shipped (``catalogue``, registered on import).
"""

from compressgate.recipes.catalogue import (
    BUILTIN_RECIPES,
    COLLABORATIVE_RECIPES,
    DFQ_RECIPES,
    LITERT_ALGORITHM_RECIPES,
    LITERT_QUANTIZER_RECIPES,
)
from compressgate.recipes.registry import (
    default_recipes,
    get_recipe,
    register_recipe,
    registered_recipes,
)
from compressgate.recipes.schema import (
    DEFAULT_TFLM_QUANTA,
    LITERT_ALGORITHMS,
    LITERT_RECIPES,
    REFERENCE,
    TARGET_PROMISES,
    TARGETS,
    Candidate,
    ChannelPruning,
    Clustering,
    Criterion,
    DataFree,
    FineTune,
    KeepFloat,
    Promise,
    Pruning,
    Quantization,
    Recipe,
    Structure,
    declared_targets,
    with_reference,
)

__all__ = [
    "BUILTIN_RECIPES", "COLLABORATIVE_RECIPES", "DEFAULT_TFLM_QUANTA", "DFQ_RECIPES",
    "LITERT_ALGORITHMS", "LITERT_ALGORITHM_RECIPES", "LITERT_QUANTIZER_RECIPES",
    "LITERT_RECIPES", "REFERENCE", "TARGETS", "TARGET_PROMISES", "Candidate",
    "ChannelPruning", "Clustering", "Criterion", "DataFree", "FineTune", "KeepFloat",
    "Promise", "Pruning", "Quantization", "Recipe", "Structure", "declared_targets",
    "default_recipes", "get_recipe", "register_recipe", "registered_recipes",
    "with_reference",
]
