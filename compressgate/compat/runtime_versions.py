"""Which TFLite runtime a ``.tflite`` file needs, from its op codes and versions alone.

The table (``runtime_table.MIN_RUNTIME``) is TensorFlow's own map from (builtin op,
op version) to the first runtime release that implements it, generated from
``runtime_version.cc`` by ``scripts/gen_runtime_table.py``. A pair the table lacks is
reported as unknown, never guessed. No TensorFlow here: pure functions on op lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from compressgate.errors import UserInputError

_ENTRY = re.compile(r'\{\{BuiltinOperator_(\w+),\s*(\d+)\},\s*"([0-9.]+)"\}')
_VERSION = re.compile(r"\d+(\.\d+){0,2}")


def parse_runtime_version_cc(text: str) -> dict[tuple[str, int], str]:
    """The ``{op, version} -> "x.y.z"`` map of TensorFlow's ``runtime_version.cc``."""
    table: dict[tuple[str, int], str] = {}
    for op, version, runtime in _ENTRY.findall(text):
        key = (op, int(version))
        if key in table and table[key] != runtime:
            raise ValueError(f"runtime_version.cc: {op} v{version} listed twice")
        table[key] = runtime
    if not table:
        raise ValueError("runtime_version.cc: no {{BuiltinOperator_X, n}, \"x.y.z\"} entries")
    return table


def parse_version(text: str, *, where: str = "min_runtime") -> tuple[int, int, int]:
    """``"2.14"`` -> ``(2, 14, 0)``; a one-line ``UserInputError`` for anything else."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text.strip()):
        raise UserInputError(f"{where}: expected a runtime version like '2.14', got {text!r}")
    major, minor, patch = [*(int(p) for p in text.strip().split(".")), 0, 0][:3]
    return major, minor, patch


@dataclass(frozen=True)
class OpNeed:
    """One distinct (op, version) of a model and the runtime it needs (None: unknown)."""

    op: str
    version: int
    runtime: str | None

    def __str__(self) -> str:
        return f"{self.op} v{self.version}"


@dataclass(frozen=True)
class RuntimeNeed:
    """What a model's op codes say about the runtime it needs."""

    ops: tuple[OpNeed, ...]

    @property
    def minimum(self) -> str | None:
        """The newest runtime any known op needs (None when no op is known)."""
        known = [o.runtime for o in self.ops if o.runtime is not None]
        return max(known, key=parse_version) if known else None

    @property
    def unknown(self) -> list[OpNeed]:
        return [o for o in self.ops if o.runtime is None]

    def blockers(self, declared: str) -> list[OpNeed]:
        """Ops that need a newer runtime than ``declared``, newest first."""
        limit = parse_version(declared)
        late = [o for o in self.ops if o.runtime is not None and parse_version(o.runtime) > limit]
        return sorted(late, key=lambda o: (parse_version(o.runtime or "0"), o.op), reverse=True)


def requirement(ops: Iterable[tuple[str, int]],
                table: Mapping[tuple[str, int], str] | None = None) -> RuntimeNeed:
    """Look every distinct (op name, version) up in ``table`` (default: TensorFlow's)."""
    if table is None:
        from compressgate.compat.runtime_table import MIN_RUNTIME as table
    return RuntimeNeed(tuple(OpNeed(op, version, table.get((op, version)))
                             for op, version in sorted(set(ops))))


@dataclass(frozen=True)
class RuntimeVerdict:
    """Can a model run on the declared minimum runtime? ``ok`` is None when unknown."""

    ok: bool | None
    measured: str
    note: str


def judge(need: RuntimeNeed, declared: str) -> RuntimeVerdict:
    """Fail on any op newer than ``declared``; an unknown op cannot pass either."""
    measured = f"needs runtime >= {need.minimum}" if need.minimum else "needs runtime: unknown"
    late = need.blockers(declared)
    if late:
        return RuntimeVerdict(False, measured, "; ".join(
            f"{o} needs runtime {o.runtime} > declared {declared}" for o in late))
    if need.unknown:
        return RuntimeVerdict(None, measured, "not in TensorFlow's runtime table: "
                              + ", ".join(map(str, need.unknown)))
    return RuntimeVerdict(True, measured, "")
