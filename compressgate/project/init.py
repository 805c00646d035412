"""``compressgate init``: a commented starter config for a model the project has never seen.

``render`` is pure (unit-testable without TensorFlow); ``write`` inspects the model with
the backend and refuses to overwrite an existing config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.errors import UserInputError
from compressgate.project.models import Dataset
from compressgate.project.sources import Source
from compressgate.recipes import LITERT_QUANTIZER_RECIPES, default_recipes

GATE_TEST = '''"""The compressgate release gate (written by `compressgate init`).

One test item per model x recipe x check; see compressgate.toml for what is gated.
"""


def test_gate(compressgate_check):
    compressgate_check()
'''


def _toml(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return json.dumps(value)


def regression_budget(y_test: np.ndarray) -> float:
    """A starting max_loss for a regressor: 10 % of the test targets' spread."""
    return float(f"{0.1 * float(np.std(y_test)):.2g}") or 0.01


# What init adds to the project's .gitignore: the result cache and the lock files that
# the update flow leaves beside the baselines (neither belongs in a commit).
IGNORED = (".compressgate_cache/", "baselines/**/.*.lock", "reports/")


def plan(info: dict[str, Any], recipes: list[str] | None) -> tuple[list[str], list[str]]:
    """(the recipes to gate, "recipe: why it was left out" for the ones that cannot
    apply to a model described by ``info``)."""
    qat_error, recurrent = info.get("qat_error"), info.get("recurrent") or []
    tflite = bool(info.get("tflite"))
    if recipes:
        chosen = list(recipes)
    elif tflite:
        chosen = ["float", *(r.name for r in LITERT_QUANTIZER_RECIPES)]
    else:
        chosen = [r.name for r in default_recipes()]
    left_out = []
    if tflite and not recipes:
        left_out.append("the TF converter's, QAT and pruning recipes: they need the Keras "
                        "model, not a .tflite")
    if qat_error and "qat_int8" in chosen:
        chosen.remove("qat_int8")
        left_out.append(f"qat_int8: tfmot cannot quantize-aware train this model: {qat_error}")
    if recurrent and "ptq_int16x8" in chosen:
        chosen.remove("ptq_int16x8")
        left_out.append("ptq_int16x8: the converter has no 16x8 kernel for fused LSTM/RNN ops")
    return chosen, left_out


def render(*, name: str, model: str, data: str, info: dict[str, Any],
           recipes: list[str] | None = None, regression_max_loss: float | None = None,
           custom_objects: str | None = None) -> str:
    """The starter config text for one model."""
    recurrent, tflite = info.get("recurrent") or [], bool(info.get("tflite"))
    chosen, left_out = plan(info, recipes)
    shape = "x".join("N" if d is None else str(d) for d in info["input_shape"])
    lines = [
        f"# compressgate config for {name}, written by `compressgate init`.",
        "# Checked on every run (an unknown key or a wrong type is an error naming it).",
        "# README: \"Gate your own model\" lists every key.",
        "",
        "# Committed; the gate compares every run against them.",
        'baselines = "baselines"',
        "# summary.md / .csv / .json of every run.",
        'reports = "reports"',
        "# How your CI runs the gate (shown in \"missing baseline\" messages).",
        'command = "pytest"',
        "",
        f"[models.{name}]",
        f"# input {shape}, {info['output_units']} output units, {info['params']:,} parameters, "
        f"{len(info['layers'])} {'op kinds' if tflite else 'layers'}",
        f"model = {_toml(model)}",
        *([f"custom_objects = {_toml(custom_objects)}"] if custom_objects else []),
        "# .npz with x_train, y_train, x_calib, y_calib, x_test, y_test, or \"module:function\"",
        f"data = {_toml(data)}",
    ]
    if regression_max_loss is not None:
        lines += [
            "# One output unit and float targets: scored by mean absolute error. max_loss is",
            "# how much worse than the float model a recipe may be (10 % of the targets'",
            "# spread as a start: set what your product accepts).",
            f'metric = {{ function = "mae", max_loss = {regression_max_loss} }}',
        ]
    else:
        lines += ["# Top-1 accuracy; a recipe may lose < 2 points against the float model.",
                  'metric = "accuracy"']
    if recurrent:
        lines += [f"# Recurrent layers ({', '.join(recurrent)}) convert only at a static batch.",
                  "static_batch = 1"]
    if tflite and info["input_shape"][0] is not None:
        lines += ["# The .tflite's input has a fixed batch.",
                  f"static_batch = {info['input_shape'][0]}"]
    if not info.get("compiled") and not tflite:
        lines.append("# Not compiled: fine-tuning recipes (qat_int8, prune*) need the model "
                     "saved compiled.")
    lines.append(f"recipes = {_toml(chosen)}")
    lines += [f"# left out: {reason}" for reason in left_out]
    lines += [
        "",
        "# Per-recipe overrides (each may carry why = \"the measured reason\"), e.g.:",
        f"# [models.{name}.recipe_overrides.prune_int8]",
        "# finetune = { epochs = 10 }",
        "# prune = { final_sparsity = 0.7 }",
        "# promise = { min_size_ratio = 2.5, max_drop_pts = 1.0 }",
        "",
    ]
    return "\n".join(lines)


def ignore(gitignore: Path, entries: tuple[str, ...] = IGNORED) -> list[str]:
    """Append the entries ``gitignore`` lacks (creating it); return the ones added."""
    text = gitignore.read_text() if gitignore.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    added = [e for e in entries if e not in present]
    if added:
        from compressgate.files import write_text_atomic

        head = text if not text or text.endswith("\n") else text + "\n"
        write_text_atomic(gitignore, head + "# compressgate: result cache, lock files, reports\n"
                          + "".join(f"{e}\n" for e in added))
    return added


@dataclass(frozen=True)
class Written:
    """What ``init`` wrote and what it left out, for the terminal."""

    paths: list[Path]
    left_out: list[str]
    ignored: list[str]


def write(model_path: Path, *, data: Path | None, name: str | None, config_path: Path,
          recipes: list[str] | None, tests: Path | None, force: bool,
          custom_objects: str | None = None) -> Written:
    """Inspect ``model_path`` and write the starter config (and a gate test file), and
    the ignore entries the project's ``.gitignore`` lacks."""
    from compressgate.backends import tf as backend

    if config_path.exists() and not force:
        raise UserInputError(f"{config_path}: exists; add the model to it by hand, or pass "
                             "--force to overwrite it")
    name = name or model_path.stem.replace("-", "_").replace(".", "_")
    if model_path.suffix.lower() == ".tflite":
        from compressgate.backends import tflite_source

        try:
            content = model_path.read_bytes()
        except OSError as exc:
            raise UserInputError(f"{model_path}: cannot read ({exc.strerror})") from None
        info = {**tflite_source.describe(content, name=str(model_path)), "tflite": True}
        info["layers"] = info.pop("ops")
    else:
        objects = Source(custom_objects, Path.cwd()).call() if custom_objects else None
        info = backend.describe(backend.load_model(model_path, objects))
    budget = None
    data_text = "data.npz"
    if data is not None:
        regression = info["output_units"] == 1
        dataset = Dataset.load(data, classification=not regression)
        dataset.check_fits(input_shape=tuple(info["input_shape"]),
                           num_classes=info["output_units"], model=name, data=str(data),
                           classification=not regression)
        if regression:
            budget = regression_budget(dataset.y_test)
        data_text = os.path.relpath(data, config_path.parent)
    text = render(name=name, model=os.path.relpath(model_path, config_path.parent),
                  data=data_text, info=info, recipes=recipes, regression_max_loss=budget,
                  custom_objects=custom_objects)
    from compressgate.files import write_text_atomic

    write_text_atomic(config_path, text)
    written = [config_path]
    if tests is not None and not tests.exists():
        write_text_atomic(tests, GATE_TEST)
        written.append(tests)
    gitignore = config_path.parent / ".gitignore"
    ignored = ignore(gitignore)
    if ignored:
        written.append(gitignore)
    return Written(written, plan(info, recipes)[1], ignored)
