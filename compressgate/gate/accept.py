"""What to write to accept a broken promise on purpose: the exact config lines that
would pass the measured figure, printed under the failure. Nothing is loosened by the
gate itself; the user copies the lines and fills in why."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from compressgate.gate.records import Verdict

# Row metric -> (promise field, rounding that still accepts the measured figure).
_PROMISE_FIELDS = {
    "size_ratio": "min_size_ratio",
    "gzip_ratio": "min_gzip_ratio",
    "accuracy drop (pts)": "max_drop_pts",
}


def accepting_value(field: str, measured: float) -> float:
    """The promise value that the measured figure passes, rounded to 0.01: a floor for
    ``min_*`` (``>=``), the next 0.01 above for ``max_drop_pts`` (``<``)."""
    if field.startswith("min_"):
        return math.floor(measured * 100 + 1e-9) / 100
    return (math.floor(measured * 100 + 1e-9) + 1) / 100


def override_hint(verdict: Verdict, *, config: Path | None,
                  existing: dict[str, Any] | None = None) -> str | None:
    """The lines that would accept ``verdict``'s failed promise rows (None when no failed
    row is a promise). ``existing`` is the recipe's current ``promise`` override, kept
    in the printed table so that pasting it replaces nothing else."""
    promise = dict(existing or {})
    changed = []
    for row in verdict.regressions:
        field = _PROMISE_FIELDS.get(row.metric)
        if field is None or not isinstance(row.measured, int | float):
            continue
        promise[field] = accepting_value(field, float(row.measured))
        changed.append(f"{field} {row.expected} -> {promise[field]}")
    if not changed:
        return None
    where = config.name if config is not None else "compressgate.toml"
    why = "the measured reason this is acceptable"
    if config is not None and config.suffix == ".json":
        body = json.dumps({"promise": promise, "why": why})
        lines = [f'models.{verdict.model}.recipe_overrides.{verdict.recipe} = {body}']
    else:
        prefix = "tool.compressgate." if where == "pyproject.toml" else ""
        table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in promise.items())
        lines = [f"[{prefix}models.{verdict.model}.recipe_overrides.{verdict.recipe}]",
                 f"promise = {{ {table} }}", f'why = "{why}"']
    return "\n".join([
        f"to accept the measured figure on purpose ({'; '.join(changed)}), set in {where} "
        "and say why (nothing is loosened until you do):", *(f"    {x}" for x in lines)])
