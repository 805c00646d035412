"""What users read: importing TensorFlow and loading a model through LiteRT print
nothing on stderr (no oneDNN, CUDA or XNNPACK notes)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

MODEL = Path(__file__).resolve().parents[2] / "baselines" / "digits_cnn" / "ptq_int8.tflite"


def test_tensorflow_and_litert_say_nothing_on_stderr():
    code = ("import compressgate.backends.tf.env as env; tf = env.import_tf(); env.import_keras();"
            " tf.constant(1) + 1; from compressgate.measure import litert; "
            f"litert.interpreter(open({str(MODEL)!r}, 'rb').read()); print('ok')")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
    assert result.stderr == ""
