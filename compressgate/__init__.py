"""compressgate: a release gate for compressed TensorFlow Lite / LiteRT models.

Data flows one way: model + data -> recipe -> ``.tflite`` bytes -> measurement ->
verdict against a baseline -> report. Importing this package never imports TensorFlow.
"""

import os

# tfmot 0.8 only works with Keras 2 (tf-keras). TensorFlow reads this variable when
# ``tf.keras`` is first resolved, so it must be set before any TensorFlow import: this
# is the one place it is set, and every compressgate module imports the package first.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# C++ logs (INFO, and ERROR lines such as "failed call to cuInit" on a machine without
# a GPU) drown the progress lines; real errors reach compressgate as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from compressgate.errors import CompressgateError, UserInputError
from compressgate.recipes import (
    Recipe,
    default_recipes,
    get_recipe,
    register_recipe,
    registered_recipes,
)

__all__ = [
    "CompressgateError",
    "Recipe",
    "UserInputError",
    "default_recipes",
    "get_recipe",
    "register_recipe",
    "registered_recipes",
]
__version__ = "0.1.0"
