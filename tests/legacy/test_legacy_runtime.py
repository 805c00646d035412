"""Every converted model on tflite-runtime 2.14 (tflite-runtime's last release): it loads
and agrees with LiteRT, or it fails to load exactly where the runtime table says."""

import os
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from compressgate.compat.runtime_versions import judge, requirement
from compressgate.measure import flatbuffer, litert
from compressgate.project import config
from compressgate.project.models import Dataset
from compressgate.recipes import default_recipes
from compressgate.workflows.legacy import agreement

if os.environ.get("COMPRESSGATE_LEGACY_ENV"):  # the legacy tox env: never skip
    import tflite_runtime.interpreter as legacy
else:
    legacy = pytest.importorskip("tflite_runtime.interpreter",
                                 reason="tflite-runtime: only in the legacy tox env")

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = version("tflite-runtime")
# Float outputs (measured on the fixtures): float and float16 models differ from LiteRT by
# at most 2.5e-6; int16x8 models by up to 2.7e-4 (the int16 kernels changed since 2.14).
FLOAT_ATOL = {"int16x8": 1e-3}
DEFAULT_FLOAT_ATOL = 1e-5
CASES = [(m, r.name) for m in config.load(ROOT / "fixtures" / "manifest.json").specs
         for r in default_recipes()]


def legacy_interpreter(tflite: bytes):
    interp = legacy.Interpreter(model_content=tflite, num_threads=1)
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize(("model", "recipe"), CASES, ids=[f"{m}-{r}" for m, r in CASES])
def test_loads_on_the_legacy_runtime_and_agrees_with_litert(exported, model, recipe):
    out, index = exported
    (entry,) = [e for e in index["entries"] if (e["model"], e["recipe"]) == (model, recipe)]
    if not entry["converted"]:
        pytest.skip(f"not converted ({entry['error']}); the main gate judges that")
    tflite = (out / entry["tflite"]).read_bytes()
    need = requirement((op.name, op.version) for op in flatbuffer.inspect(tflite).ops)
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
    outputs = litert.predict(tflite, data.x_test, batch=entry["static_batch"],
                              make_interpreter=legacy_interpreter)
    detail = interp.get_output_details()[0]
    scale = None if np.issubdtype(detail["dtype"], np.floating) else detail["quantization"][0]
    # Like for like: LiteRT's builtin kernels. LiteRT's default XNNPACK delegate also
    # runs int8 ops, with other rounding (reported, not judged: see the README).
    result = agreement(np.load(out / entry["builtin_outputs"]), outputs, scale)
    delegated = agreement(np.load(out / entry["outputs"]), outputs, scale)
    print(f"{model} x {recipe}: loads on {RUNTIME}; vs LiteRT builtin kernels: "
          f"{_describe(result)}; vs LiteRT as measured (XNNPACK): {_describe(delegated)}")
    atol = FLOAT_ATOL.get(entry["quantization"], DEFAULT_FLOAT_ATOL)
    assert result.holds(float_atol=atol), result


def _describe(result) -> str:
    text = f"top-1 {result.top1:.4f}, max |diff| {result.max_abs_diff:.3g}"
    return text + (f" ({result.max_quanta:.3g} quanta)" if result.max_quanta is not None
                   else "")


def test_this_process_never_imported_tensorflow(exported):
    assert "tensorflow" not in sys.modules
