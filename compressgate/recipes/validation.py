"""How recipe fields are checked: one line naming the field, what it expects and what it
got (``require``), scalar fields held to their declared types (``check_types``), and
typed dataclasses built from plain config data that name any unknown field
(``from_dict``, ``deep_merge``). The rules of each field are in ``schema``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from compressgate.errors import UserInputError

_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string"}


def require(ok: bool, field_name: str, expected: str, got: Any) -> None:
    if not ok:
        raise UserInputError(f"recipe field {field_name}: expected {expected}, got {got!r}")


def check_types(obj: Any, prefix: str) -> None:
    """Scalar fields must hold their declared type (``"1.4x"`` is not a number, ``1`` is
    not a bool): a config value of the wrong type is one line naming the field, not a
    TypeError in the middle of a run."""
    for f in fields(obj):
        declared = [t.strip() for t in str(f.type).split("|")]
        kinds = [t for t in declared if t in _SCALARS]
        if not kinds or any(t not in (*_SCALARS, "None") for t in declared):
            continue  # Literal, tuple, nested dataclass: checked where they are used
        value = getattr(obj, f.name)
        if value is None and "None" in declared:
            continue
        ok = any(isinstance(value, _SCALARS[k]) for k in kinds) and (
            not isinstance(value, bool) or "bool" in kinds)
        expected = " or ".join(_TYPE_NAMES[k] for k in kinds)
        require(ok, f"{prefix}{f.name}", expected + (" (or unset)" if "None" in declared
                                                    else ""), value)


def from_dict(cls: type, data: dict[str, Any], where: str,
              nested: dict[str, type] | None = None) -> Any:
    """``cls`` built from ``data``, its ``nested`` fields (name -> dataclass) built from
    tables first; an unknown or ill-typed field is one line naming it."""
    if not isinstance(data, dict):
        raise UserInputError(f"{where}: expected a table of fields, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserInputError(
            f"{where}: unknown field {unknown[0]!r} (expected one of {', '.join(sorted(known))})"
        )
    kwargs = {}
    for key, value in data.items():
        inner = (nested or {}).get(key)
        if inner is not None and isinstance(value, dict):
            value = from_dict(inner, value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UserInputError(f"{where}: {exc}") from None


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it, table by table."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
