"""Reproducibility: the same model, recipe, seeds and versions give the same ``.tflite``.

Every recipe seeds everything and enables TensorFlow's op determinism
(``backends.tf.env.deterministic``), so a conversion is expected to be byte-identical across
processes and runs, fine-tuned recipes included, on one machine class. The gate compares
the sha256 of this run's file with the one recorded in the baseline when it was recorded
with the same library versions, Python and machine class (TensorFlow's oneDNN training
kernels are ISA-specific, so fine-tuned weights differ between classes; elsewhere the
outputs are compared side by side with the accepted file instead). A result served from
the result cache was converted in an earlier run; the row says so, since only a fresh
conversion proves anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from compressgate.gate.baselines import environment_changes
from compressgate.gate.records import Row, Status
from compressgate.gate.rules import Reference, identity_row
from compressgate.pipeline.record import ResultRow


def check_row(row: ResultRow, metrics: dict[str, Any], env_now: dict[str, str],
              env_then: dict[str, str], create_hint: str) -> Row:
    """The ``tflite_sha256`` row of the baseline check (see ``gate.rules.identity_row``): bytes
    are compared only on the build (versions, Python, machine class) that recorded them."""
    return identity_row(row, Reference(metrics, build_changes=environment_changes(
        env_then, env_now)), create_hint)


def fresh_sha256(project: Path | None, models: list[str],
                 recipes: list[str]) -> dict[str, str | None]:
    """sha256 of each model x recipe converted now, in this process, bypassing the result
    cache (``None``: the recipe does not apply). Keys are ``model/recipe``."""
    from compressgate.backends import candidate
    from compressgate.backends import tf as backend
    from compressgate.project import config
    from compressgate.project.models import select

    out: dict[str, str | None] = {}
    for spec in select(config.load(project).specs, models):
        data = spec.load_data()
        for name in recipes:
            artifact = candidate.compress(backend, spec, spec.resolve(name), data)
            out[f"{spec.name}/{name}"] = (hashlib.sha256(artifact.tflite).hexdigest()
                                          if artifact.tflite is not None else None)
    return out


def compare_with_baselines(fresh: dict[str, str | None], directory: Path) -> int:
    """Print one line per fresh conversion against its baseline; 1 if any changed."""
    from compressgate.backends import tf as backend
    from compressgate.gate import baselines

    env = baselines.environment(backend.versions())
    changed = 0
    for name, sha in sorted(fresh.items()):
        model, recipe = name.split("/")
        stored = baselines.load(baselines.path_for(directory, model, recipe), model, recipe)
        if sha is None or stored is None:
            print(f"{name}: {'not converted' if sha is None else 'no baseline'}")
            continue
        verdict = check_row(ResultRow(model, recipe, True, tflite_sha256=sha), stored.metrics,
                            env, stored.environment, f"the gate's {baselines.UPDATE_MISSING}")
        changed += verdict.status == Status.REGRESSION and verdict.expected is not None
        print(f"{name}: {verdict.status} {verdict.measured} vs {verdict.expected} "
              f"{verdict.note}")
    return 1 if changed else 0
