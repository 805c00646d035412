"""Model + recipe -> ``.tflite`` bytes: the backend protocol (``protocol``), the
TensorFlow backend (``tf``, the only code that imports TensorFlow) and a test knob that
crashes or hangs on chosen recipes (``faults``)."""
