"""Every converted model on tflite-runtime 2.14 (tflite-runtime's last release): it loads
and agrees with LiteRT, or it fails to load exactly where the runtime table says."""

import sys
from pathlib import Path

import numpy as np
import pytest
import tflite_runtime
from tflite_runtime.interpreter import Interpreter

from compressgate import measure, tflite_file
from compressgate.legacy import agreement
from compressgate.models import Dataset, load_manifest
from compressgate.recipes import registered_recipes
from compressgate.runtime_versions import judge, requirement

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = tflite_runtime.__version__
# Measured: float outputs of the two runtimes differ by at most 2.4e-7 on the fixtures
# (XNNPACK in both); ten times that still tells a different kernel from rounding.
FLOAT_ATOL = 1e-5
CASES = [(m, r.name) for m in load_manifest(ROOT / "fixtures")
         for r in registered_recipes()]


def legacy_interpreter(tflite: bytes) -> Interpreter:
    interp = Interpreter(model_content=tflite, num_threads=1)
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize(("model", "recipe"), CASES, ids=[f"{m}-{r}" for m, r in CASES])
def test_loads_on_the_legacy_runtime_and_agrees_with_litert(exported, model, recipe):
    out, index = exported
    (entry,) = [e for e in index["entries"] if (e["model"], e["recipe"]) == (model, recipe)]
    if not entry["converted"]:
        pytest.skip(f"not converted ({entry['error']}); the main gate judges that")
    tflite = (out / entry["tflite"]).read_bytes()
    need = requirement((op.name, op.version) for op in tflite_file.inspect(tflite).ops)
    verdict = judge(need, RUNTIME)
    assert not need.unknown, verdict.note
    try:
        interp = legacy_interpreter(tflite)
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        assert verdict.ok is False, f"tflite-runtime {RUNTIME} cannot load it, but the " \
                                    f"runtime table says it can: {message[:200]}"
        assert any(f"'{o.op}' version '{o.version}'" in message
                   for o in need.blockers(RUNTIME)), message[:200]
        pytest.xfail(f"{verdict.measured}: {verdict.note}")
    assert verdict.ok, f"loads on tflite-runtime {RUNTIME} though the table says " \
                       f"{verdict.note}"
    data = Dataset.load(Path(entry["data"]))
    legacy = measure.predict(tflite, data.x_test, batch=entry["static_batch"],
                             make_interpreter=legacy_interpreter)
    detail = interp.get_output_details()[0]
    scale = None if np.issubdtype(detail["dtype"], np.floating) else detail["quantization"][0]
    result = agreement(np.load(out / entry["outputs"]), legacy, scale)
    print(f"{model} x {recipe}: loads on {RUNTIME}, top-1 agreement {result.top1:.4f}, "
          f"max |diff| {result.max_abs_diff:.3g}"
          + (f" ({result.max_quanta:.3g} quanta)" if scale else ""))
    assert result.holds(float_atol=FLOAT_ATOL), result


def test_this_process_never_imported_tensorflow(exported):
    assert "tensorflow" not in sys.modules
