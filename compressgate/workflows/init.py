"""``compressgate init``: a commented starter config for a model the project has never seen.

``render`` is pure (unit-testable without TensorFlow); ``write`` inspects the model with
the backend and refuses to overwrite an existing config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.errors import UserInputError
from compressgate.project.models import Dataset, needs_tf_keras
from compressgate.project.sources import Source
from compressgate.recipes import (
    DEFAULT_TFLM_QUANTA,
    LITERT_QUANTIZER_RECIPES,
    REFERENCE,
    default_recipes,
    get_recipe,
)

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
    qat_error, tflite = info.get("qat_error"), bool(info.get("tflite"))
    if recipes:
        chosen = list(recipes)
    elif tflite:
        chosen = [REFERENCE, *(r.name for r in LITERT_QUANTIZER_RECIPES)]
    else:
        chosen = [r.name for r in default_recipes()]
    left_out = []
    if tflite and not recipes:
        left_out.append("the TF converter's, QAT and pruning recipes: they need the Keras "
                        "model, not a .tflite")
    blocker = info.get("keras3_blocker")
    if blocker:  # a Keras 3 model without a faithful tf_keras twin
        for recipe in [r for r in chosen if needs_tf_keras(get_recipe(r))]:
            chosen.remove(recipe)
            left_out.append(f"{recipe}: needs tf_keras (tfmot), and {blocker}")
    if qat_error and "qat_int8" in chosen:
        chosen.remove("qat_int8")
        left_out.append(f"qat_int8: tfmot cannot quantize-aware train this model: {qat_error}")
    if info.get("lstm") and "ptq_int16x8" in chosen:
        chosen.remove("ptq_int16x8")
        left_out.append("ptq_int16x8: the converter has no 16x8 kernel for fused LSTM ops")
    return chosen, left_out


def render(*, name: str, model: str, data: str, info: dict[str, Any],
           recipes: list[str] | None = None, regression_max_loss: float | None = None,
           custom_objects: str | None = None, targets: dict[str, Any] | None = None) -> str:
    """The starter config text for one model; ``targets``: what ``probe_targets``
    measured on its ptq_int8 file (None: not probed)."""
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
        *([f"# {info['keras3']}"] if info.get("keras3") else []),
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
    overrides = {}
    if targets is not None:
        said, overrides = target_lines(targets, [r for r in chosen if r in FULL_INTEGER])
        lines += said
    for recipe, entry in overrides.items():
        lines += ["", f"[models.{name}.recipe_overrides.{recipe}]",
                  "promise = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in
                                             entry["promise"].items()) + " }",
                  f"why = {_toml(entry['why'])}"]
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


# Recipes that promise TFLM by default (recipes.declared_targets).
FULL_INTEGER = ("ptq_int8", "qat_int8", "prune_int8")


def target_lines(found: dict[str, Any], full_integer: list[str]
                 ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(comment lines saying which targets the model meets, recipe overrides): where its
    int8 file does not run on TFLM, or not bit-exactly, the full-integer recipes get the
    promise it keeps, with the measured reason."""
    if found.get("error"):
        return [f"# Targets: not checked: {found['error']}"], {}
    lines = []
    if found.get("kernel_agreement") is not None:
        quanta = found.get("kernel_max_quanta")
        lines.append(f"# LiteRT kernels: XNNPACK and the reference kernels agree on top-1 for "
                     f"{found['kernel_agreement']:.1%} of {found['target_rows']} test rows"
                     + (f" (largest difference {quanta} quanta)" if quanta is not None else "")
                     + "; promise.min_kernel_agreement gates it.")
    loads, why = found.get("tflm_loads"), found.get("tflm_error")
    if loads is None:
        return [*lines, f"# TensorFlow Lite Micro: not checked: {why}"], {}
    if not loads:
        lines.append(f"# TensorFlow Lite Micro: ptq_int8 does not run there: {why}")
        reason = f"TFLM (measured by compressgate init): {why}"
        return lines, {r: {"promise": {"targets": []}, "why": reason} for r in full_integer}
    kib = (found.get("tflm_arena_bytes") or 0) / 1024
    quanta = found.get("tflm_max_quanta") or 0
    lines.append(f"# TensorFlow Lite Micro: ptq_int8 runs there with a {kib:.1f} KiB tensor "
                 f"arena, outputs within {quanta} quanta of LiteRT's reference kernels; "
                 "full-integer recipes promise it (set promise.max_arena_kib for your "
                 "device).")
    if quanta <= DEFAULT_TFLM_QUANTA:
        return lines, {}
    reason = (f"TFLM's outputs differ from LiteRT's reference kernels by up to {quanta} "
              f"quanta on {found['target_rows']} test rows (measured by compressgate init)")
    return lines, {r: {"promise": {"max_tflm_quanta": quanta}, "why": reason}
                   for r in full_integer}


def probe_targets(config_path: Path, name: str) -> dict[str, Any] | None:
    """Convert the model with ptq_int8 and measure where it runs (``measure.targets``):
    None when no recipe of the config promises a target runtime. The conversion is the
    project's result, left in its result cache: the first ``compressgate run`` reuses it
    (the promises init then writes are target promises, which change no byte)."""
    from compressgate.measure import targets
    from compressgate.pipeline.cache import ResultCache
    from compressgate.pipeline.runner import Runner
    from compressgate.project import config
    from compressgate.recipes import declared_targets

    specs = config.load(config_path).specs
    spec = specs[name]
    if not any(declared_targets(spec.resolve(r)) for r in spec.recipes or ()):
        return None
    # In this process, as before: init has TensorFlow loaded already.
    runner = Runner(specs, ResultCache(None), isolate=False)
    result = runner.outcome(name, "ptq_int8")
    if not result.converted:
        return {"error": f"ptq_int8 did not convert: {result.error}"}
    data = runner.data(name)
    x, y = data.x_test[:targets.ROWS], data.y_test[:targets.ROWS]
    found = targets.measure(result.tflite or b"", x, y if spec.metric.is_accuracy else None,
                            batch=spec.static_batch)
    if found.get("targets_error"):
        return {"error": found["targets_error"]}
    return {**found, "target_rows": len(x)}


@dataclass(frozen=True)
class Written:
    """What ``init`` wrote and what it left out, for the terminal."""

    paths: list[Path]
    left_out: list[str]
    ignored: list[str]
    # What init found about the model that decides its path (a Keras 3 model's twin).
    said: list[str] = field(default_factory=list)


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
        tflite_source.check_float(content, name=str(model_path))
        info = {**tflite_source.describe(content, name=str(model_path)), "tflite": True}
        info["layers"] = info.pop("ops")
    else:
        objects = Source(custom_objects, Path.cwd()).call() if custom_objects else None
        loaded = backend.load_any(model_path, objects)
        info = backend.describe(loaded)
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
        if "keras3" in info:  # its tf_keras twin, compared with it on the test split
            info.update(backend.verify_keras3(loaded, dataset.x_test))
        data_text = os.path.relpath(data, config_path.parent)
    def text(found: dict[str, Any] | None = None) -> str:
        return render(name=name, model=os.path.relpath(model_path, config_path.parent),
                      data=data_text, info=info, recipes=recipes, regression_max_loss=budget,
                      custom_objects=custom_objects, targets=found)

    from compressgate.files import write_text_atomic

    write_text_atomic(config_path, text())
    if data is not None:  # the written config is what the probe converts with
        found = probe_targets(config_path, name)
        if found is not None:
            write_text_atomic(config_path, text(found))
    written = [config_path]
    if tests is not None and not tests.exists():
        write_text_atomic(tests, GATE_TEST)
        written.append(tests)
    gitignore = config_path.parent / ".gitignore"
    ignored = ignore(gitignore)
    if ignored:
        written.append(gitignore)
    return Written(written, plan(info, recipes)[1], ignored,
                   [info["keras3"]] if info.get("keras3") else [])
