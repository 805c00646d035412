"""The TensorFlow backend (tf-keras and tfmot): this module satisfies
``backends.protocol.Backend``.

- ``env``: the one module that imports TensorFlow and touches its private APIs;
- ``loading``: Keras model files and ``module:function`` models, with one-line errors;
- ``keras3``: Keras 3 models: their verified tf_keras twin, or why they have none;
- ``convert``: recipe -> ``.tflite`` (QAT, pruning, conversion);
- ``keep_float``: int8 with chosen layers kept float, and the ``auto`` search;
- ``dfq``: data-free quantization (BatchNorm folding, equalization, bias absorption and
  correction) on the Keras layers, with ``backends.equalization``'s arithmetic;
- ``channel_prune``: a narrower model without the channels ``backends.channels`` drops;
- ``qat``: QuantizeConfigs for layers tfmot refuses; ``qat_start``: QAT from calibrated
  ranges with BatchNorm frozen;
- ``recurrent``: recurrent layers at a static batch, unrolled where int8 needs it;
- ``debugger``: TFLite's ``QuantizationDebugger`` (per-layer error);
- ``fixtures``: ``compressgate fixtures build``.
"""

from compressgate.backends.tf.convert import (
    TENSORBOARD_ENV,
    compress,
    tensorboard_dir,
    use_tensorboard,
)
from compressgate.backends.tf.debugger import diagnose
from compressgate.backends.tf.env import deterministic, versions
from compressgate.backends.tf.loading import (
    describe,
    load_any,
    load_model,
    model_digest,
    model_info,
    verify_keras3,
)

__all__ = ["TENSORBOARD_ENV", "compress", "describe", "deterministic", "diagnose",
           "load_any", "load_model", "model_digest", "model_info", "tensorboard_dir",
           "use_tensorboard", "verify_keras3", "versions"]
