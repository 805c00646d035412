"""What to write to accept a broken promise on purpose: the exact config lines that
would pass the measured figure, printed under the failure and, for the whole run, once
in the closing summary. Nothing is loosened by the gate itself; the user pastes the lines
and fills in why."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from compressgate.gate.records import Verdict
from compressgate.project.models import ModelSpec

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


def promised(existing: dict[str, Any], fields: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The ``promise`` of ``existing`` (a recipe's whole current override) with each of
    ``accepting``'s broken fields set to the value that accepts the measured figure."""
    old = existing.get("promise")
    return {**(old if isinstance(old, dict) else {}),
            **{k: new for k, (_, new) in fields.items()}}


def merged_override(existing: dict[str, Any], promise: dict[str, Any]) -> dict[str, Any]:
    """``existing`` (the override the config sets now) with ``promise``'s fields set in
    its ``promise`` and every other field kept, so that pasting it in place of the old one
    undoes nothing the user wrote. Their ``why`` is kept, with room for the new reason."""
    merged = {k: v for k, v in existing.items() if k != "why"}
    old = merged.get("promise")
    merged["promise"] = {**(old if isinstance(old, dict) else {}), **promise}
    why = existing.get("why")
    merged["why"] = WHY if not why else str(why) if WHY in str(why) else f"{why}; {WHY}"
    return merged


def _syntax(config: Path | None) -> str:
    if config is not None and config.suffix == ".json":
        return "json"
    return "pyproject" if config is not None and config.name == "pyproject.toml" else "toml"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    """``value`` as a one-line TOML value (inline tables, arrays)."""
    if isinstance(value, dict):  # TOML has no null: an absent field is the same
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()
                 if v is not None]
        return f"{{ {', '.join(items)} }}" if items else "{}"
    if isinstance(value, list | tuple):
        return f"[{', '.join(_toml_value(v) for v in value)}]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    # JSON's strings, numbers and booleans are TOML's, but for DEL, which TOML escapes.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_header(model: str, recipe: str, config: Path | None) -> str:
    prefix = "tool.compressgate." if _syntax(config) == "pyproject" else ""
    return f"[{prefix}models.{_toml_key(model)}.recipe_overrides.{_toml_key(recipe)}]"


def toml_table(model: str, recipe: str, override: dict[str, Any], config: Path | None,
               ) -> list[str]:
    """``override`` as the TOML table ``[models.<model>.recipe_overrides.<recipe>]``
    (under ``[tool.compressgate]`` in pyproject.toml), every field on one line."""
    lines = [_toml_header(model, recipe, config)]
    promise = override.get("promise") or {}
    for field in ("min_size_ratio", "min_gzip_ratio"):
        if isinstance(promise.get(field), int | float) and promise[field] < 1:
            # Accepting this keeps a file larger than the float model's: say so where
            # the user pastes it (a TOML comment).
            lines.append(f"# {field} {promise[field]}: this recipe's file is larger than the "
                         f"float model's; leaving {recipe} out of `recipes` may serve better")
    return [*lines, *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in override.items()
                      if v is not None)]


def json_entry(recipe: str, override: dict[str, Any]) -> str:
    """``override`` as the JSON member ``"<recipe>": {...}`` of ``recipe_overrides``."""
    return f"{json.dumps(recipe)}: {json.dumps(override, ensure_ascii=False)}"


def override_lines(model: str, recipe: str, override: dict[str, Any],
                   config: Path | None) -> list[str]:
    """The complete override ``override`` of ``model`` x ``recipe`` in the syntax of the
    file that defines the model: a TOML table (``compressgate.toml``, ``[tool.compressgate]``
    in pyproject.toml) or, for JSON, the member of ``models.<model>.recipe_overrides``."""
    if _syntax(config) == "json":
        return [json_entry(recipe, override)]
    return toml_table(model, recipe, override, config)


def _where(model: str, recipe: str, config: Path | None, *, present: bool) -> str:
    """Where the printed override goes: it replaces the one the file sets now."""
    if _syntax(config) == "json":
        place = f"models.{model}.recipe_overrides"
        return (f'replace the entry "{recipe}" of {place} with this one' if present
                else f"add this entry to {place} (create it if absent)")
    header = _toml_header(model, recipe, config)
    return (f"replace the table {header} (with its sub-tables) by these lines" if present
            else "add these lines")


def override_hint(verdict: Verdict, *, config: Path | None,
                  existing: dict[str, Any] | None = None) -> str | None:
    """The lines that would accept ``verdict``'s failed promise rows (None when no failed
    row is a promise). ``existing`` is the recipe's current override in that file: the
    printed one is it with the accepting promise fields merged in, and replaces it."""
    fields = accepting(verdict)
    if not fields:
        return None
    existing = existing or {}
    override = merged_override(existing, promised(existing, fields))
    changed = "; ".join(f"{k} {old} -> {new}" for k, (old, new) in fields.items())
    where = config.name if config is not None else "compressgate.toml"
    what = _where(verdict.model, verdict.recipe, config, present=bool(existing))
    return "\n".join([
        f"to accept the measured figure on purpose ({changed}), in {where} {what} (it keeps "
        "every field you set) and say why (nothing is loosened until you do):",
        *(f"    {x}" for x in override_lines(verdict.model, verdict.recipe, override,
                                             config))])


def with_accept(model: str, recipe: str, verdict: Verdict,
                spec: ModelSpec | None) -> tuple[Verdict, dict[str, Any] | None]:
    """``verdict`` with the lines that would accept its broken promises, and what the
    closing summary merges of them (None when no failed row is a promise). ``spec``: the
    model's, whose config file and current override the lines are written for."""
    accept = _accept(recipe, verdict, spec) if verdict.failed else None
    if accept is None:
        return verdict, None
    verdict = verdict.with_notes(override_hint(
        verdict, config=accept["path"], existing=accept["existing"]))
    return verdict, {"model": model, "recipe": recipe, "config": accept["config"],
                     "promise": accept["promise"], "override": accept["existing"]}


def _accept(recipe: str, verdict: Verdict, spec: ModelSpec | None) -> dict[str, Any] | None:
    """Where and how a broken promise of ``verdict`` would be accepted (None when
    no failed row is a promise)."""
    fields = accepting(verdict)
    if not fields:
        return None
    # The whole override the file sets now: the printed one keeps all of it.
    existing = spec.recipe_overrides.get(recipe) if spec else None
    existing = existing if isinstance(existing, dict) else {}
    path = spec.origin if spec is not None else None
    return {"path": path, "config": str(path) if path else None, "existing": existing,
            "promise": promised(existing, fields)}


def accept_block(entries: list[dict[str, Any]]) -> list[str]:
    """One paste for the whole run, per config file: ``entries`` are the records'
    ``accept`` dicts (model, recipe, config, promise, and ``override``, the recipe's
    current override); the promises of one recipe are merged into its override."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    current: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        key = (entry["config"] or "", entry["model"], entry["recipe"])
        merged.setdefault(key, {}).update(entry["promise"])
        current[key] = entry.get("override") or {}
    lines: list[str] = []
    for config in sorted({k[0] for k in merged}):
        path = Path(config) if config else None
        if lines:  # one paragraph per file
            lines.append("")
        mine = [(k, merged_override(current[k], merged[k]))
                for k in sorted(merged) if k[0] == config]
        if _syntax(path) != "json":
            lines.append(f"To accept every broken promise of this run on purpose, paste into "
                         f"{config or 'compressgate.toml'} and say why (each table replaces "
                         "the table of that name with its sub-tables, keeping every field "
                         "you set; a table not there yet is added):")
            for (_, model, recipe), override in mine:
                lines += [f"    {x}" for x in toml_table(model, recipe, override, path)]
            continue
        lines.append(f"To accept every broken promise of this run on purpose, edit {config} "
                     "and say why (each entry replaces the one of its name in that "
                     "recipe_overrides, keeping every field you set; an entry not there yet "
                     "is added):")
        for model in sorted({k[1] for k, _ in mine}):
            members = [json_entry(k[2], o) for k, o in mine if k[1] == model]
            lines.append(f"    models.{model}.recipe_overrides:")
            lines += [f"        {m}," for m in members[:-1]] + [f"        {members[-1]}"]
    return lines
