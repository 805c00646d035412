"""What to write to accept a broken promise on purpose: the exact config lines that
would pass the measured figure, printed under the failure and, for the whole run, once
in the closing summary. Nothing is loosened by the gate itself; the user pastes the lines
and fills in why."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from compressgate.gate.records import Verdict

# Row key -> the promise field it is checked against.
_PROMISE_FIELDS = {
    "size_ratio": "min_size_ratio",
    "gzip_ratio": "min_gzip_ratio",
    "accuracy_drop_pts": "max_drop_pts",
    # The targets check (gate.targets.check_targets).
    "tflm_loads": "targets",
    "tflm_max_quanta": "max_tflm_quanta",
    "tflm_arena_kib": "max_arena_kib",
    "kernel_agreement": "min_kernel_agreement",
}
WHY = "the measured reason this is acceptable"


def accepting_value(field: str, measured: float) -> Any:
    """The promise value that the measured figure passes, rounded to 0.01: a floor for
    ``min_*`` (``>=``), the next 0.01 above for ``max_drop_pts`` (``<``)."""
    if field == "targets":  # it does not run there: promise no target runtime
        return []
    if field == "max_tflm_quanta":  # whole quanta, "<="
        return round(measured)
    if field.startswith("min_"):
        return math.floor(measured * 100 + 1e-9) / 100
    return (math.floor(measured * 100 + 1e-9) + 1) / 100


def accepting(verdict: Verdict) -> dict[str, tuple[Any, float]]:
    """Per broken promise field of ``verdict``: (the promised value, the value that
    accepts the measured figure)."""
    out = {}
    for row in verdict.regressions:
        field = _PROMISE_FIELDS.get(row.key)
        if field is not None and isinstance(row.measured, int | float):
            out[field] = (row.expected, accepting_value(field, float(row.measured)))
    return out


def override_lines(model: str, recipe: str, promise: dict[str, Any],
                   config: Path | None) -> list[str]:
    """The override for ``model`` x ``recipe`` in the syntax of the file that defines the
    model (TOML, ``[tool.compressgate]`` in pyproject.toml, or JSON)."""
    if config is not None and config.suffix == ".json":
        body = json.dumps({"promise": promise, "why": WHY})
        return [f"models.{model}.recipe_overrides.{recipe} = {body}"]
    prefix = "tool.compressgate." if config is not None and config.name == "pyproject.toml" \
        else ""
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in promise.items())
    lines = [f"[{prefix}models.{model}.recipe_overrides.{recipe}]"]
    for field in ("min_size_ratio", "min_gzip_ratio"):
        if isinstance(promise.get(field), int | float) and promise[field] < 1:
            # Accepting this keeps a file larger than the float model's: say so where
            # the user pastes it (a TOML comment).
            lines.append(f"# {field} {promise[field]}: this recipe's file is larger than the "
                         f"float model's; leaving {recipe} out of `recipes` may serve better")
    return [*lines, f"promise = {{ {table} }}", f'why = "{WHY}"']


def override_hint(verdict: Verdict, *, config: Path | None,
                  existing: dict[str, Any] | None = None) -> str | None:
    """The lines that would accept ``verdict``'s failed promise rows (None when no failed
    row is a promise). ``existing`` is the recipe's current ``promise`` override, kept
    in the printed table so that pasting it replaces nothing else."""
    fields = accepting(verdict)
    if not fields:
        return None
    promise = {**(existing or {}), **{k: new for k, (_, new) in fields.items()}}
    changed = "; ".join(f"{k} {old} -> {new}" for k, (old, new) in fields.items())
    where = config.name if config is not None else "compressgate.toml"
    return "\n".join([
        f"to accept the measured figure on purpose ({changed}), set in {where} and say "
        "why (nothing is loosened until you do):",
        *(f"    {x}" for x in override_lines(verdict.model, verdict.recipe, promise, config))])


def accept_block(entries: list[dict[str, Any]]) -> list[str]:
    """One paste for the whole run: ``entries`` are the records' ``accept`` dicts
    (model, recipe, config, promise); promises of one recipe are merged."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        key = (entry["config"] or "", entry["model"], entry["recipe"])
        merged.setdefault(key, {}).update(entry["promise"])
    lines: list[str] = []
    for config in sorted({k[0] for k in merged}):
        path = Path(config) if config else None
        lines.append(f"To accept every broken promise of this run on purpose, paste into "
                     f"{config or 'compressgate.toml'} and say why:")
        for (where, model, recipe), promise in sorted(merged.items()):
            if where == config:
                lines += [f"    {x}" for x in override_lines(model, recipe, promise, path)]
    return lines
