"""Model + recipe -> ``.tflite`` bytes: the backend protocol (``protocol``), the
TensorFlow backend (``tf``, whose ``env`` is the only code that imports TensorFlow), the
litert-quantizer backend (``litert_quant``, ``tflite_source``), structured channel
pruning (``channels``), data-free quantization's arithmetic (``equalization``, numpy
only), per-layer quantization error and the keep_float search (``analysis``, pure), a
candidate's file or build command from another pipeline (``candidate``) and a test knob
that crashes or hangs on chosen recipes (``faults``)."""
