"""Importing tfmot does not load Keras 3 (it tried, only to fall back), and what compressgate
asks of tfmot's registries and of Keras 3 afterwards still works."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.tf

CODE = """
import sys
from compressgate.backends.tf import env
env.import_tfmot()
print("keras loaded by tfmot:", "keras" in sys.modules)
layers = env.import_keras().layers
built = [layers.Dense(4), layers.Conv2D(2, 3), layers.DepthwiseConv2D(3)]
for layer, shape in zip(built, [(None, 3), (None, 8, 8, 1), (None, 8, 8, 2)]):
    layer.build(shape)
print("prunable:", *(env.prunable(layer) for layer in built))
import keras
print("keras", keras.__version__.split(".")[0], isinstance(keras.layers.Dense(2), keras.Layer))
"""


def test_tfmot_loads_without_keras3_and_keras3_loads_after():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "keras loaded by tfmot: False",
        # Built layers have weights; tfmot prunes Dense and Conv2D, not DepthwiseConv2D.
        "prunable: True True False",
        "keras 3 True",
    ], result.stdout
