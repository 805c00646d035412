"""The legacy-runtime gate: what LiteRT computes, written down for an older runtime to check.

``compressgate legacy export DIR`` (a TensorFlow-importing process) converts
every fixture x recipe through the result cache and writes each ``.tflite`` with LiteRT's
float outputs on the test split, as the gate measures them (XNNPACK on) and on LiteRT's
builtin kernels alone, and ``index.json``. The legacy side (``tests/legacy``, in
the ``legacy`` tox environment with tflite-runtime 2.14 and numpy < 2) then loads each
file with the old runtime, never importing TensorFlow, and compares with ``agreement``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX = "index.json"


@dataclass(frozen=True)
class Agreement:
    """How an old runtime's outputs compare with LiteRT's on the same rows."""

    top1: float  # fraction of rows with the same argmax
    max_abs_diff: float
    max_quanta: float | None  # integer outputs: the largest difference in output steps

    def holds(self, *, float_atol: float) -> bool:
        """Top-1 identical everywhere; integer outputs within one quantum, float ones
        within ``float_atol``."""
        if self.top1 < 1.0:
            return False
        if self.max_quanta is not None:
            return self.max_quanta <= 1.0 + 1e-6
        return self.max_abs_diff <= float_atol


def agreement(reference: np.ndarray, candidate: np.ndarray,
              scale: float | None = None) -> Agreement:
    """Compare dequantized outputs; ``scale`` is the output quantum of an integer output."""
    reference = reference.reshape(len(reference), -1)
    candidate = candidate.reshape(len(candidate), -1)
    if reference.shape != candidate.shape:
        raise ValueError(f"outputs of shape {candidate.shape}, expected {reference.shape}")
    diff = float(np.max(np.abs(reference.astype(np.float64) - candidate)))
    top1 = float(np.mean(np.argmax(reference, -1) == np.argmax(candidate, -1)))
    return Agreement(top1, diff, diff / scale if scale else None)


def builtin_interpreter(tflite: bytes):
    """LiteRT on its builtin kernels only, without the default XNNPACK delegate: the same
    kernel family an old runtime runs int8 models on (its XNNPACK takes fewer int8 ops)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=tflite, num_threads=1,
                         experimental_op_resolver_type=(
                             OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
    return interp


def export(out: Path, project: Path | None, *, jobs: int = 1, log=print) -> dict[str, Any]:
    """Write every model x recipe's ``.tflite`` and LiteRT outputs to ``out``."""
    from compressgate.measure import litert
    from compressgate.pipeline.cache import ResultCache
    from compressgate.pipeline.runner import Runner
    from compressgate.project import config
    from compressgate.recipes import default_recipes

    specs = config.load(project).specs
    runner = Runner(specs, ResultCache(None), log=log)
    recipes = [r.name for r in default_recipes()]
    runner.precompute([(m, r) for m in specs for r in recipes], jobs)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for model, spec in specs.items():
        data = runner.data(model)
        for recipe in recipes:
            result = runner.outcome(model, recipe)
            entry: dict[str, Any] = {"model": model, "recipe": recipe,
                                     "data": str(spec.data_path.resolve()),
                                     "static_batch": spec.static_batch,
                                     "converted": result.converted, "error": result.error}
            if result.converted:
                stem = f"{model}__{recipe}"
                (out / f"{stem}.tflite").write_bytes(result.tflite)
                np.save(out / f"{stem}.litert.npy",
                        litert.predict(result.tflite, data.x_test, batch=spec.static_batch))
                np.save(out / f"{stem}.builtin.npy",
                        litert.predict(result.tflite, data.x_test, batch=spec.static_batch,
                                        make_interpreter=builtin_interpreter))
                entry.update(tflite=f"{stem}.tflite", outputs=f"{stem}.litert.npy",
                             builtin_outputs=f"{stem}.builtin.npy",
                             quantization=runner.recipe(model, recipe).quantization,
                             sha256=hashlib.sha256(result.tflite).hexdigest())
            entries.append(entry)
    index = {"versions": runner.backend.versions(), "entries": entries}
    (out / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
    return index
