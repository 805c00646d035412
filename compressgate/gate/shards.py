"""Split the gate's model x recipe cases across N jobs, deterministically.

A shard is ``K/N`` (1 <= K <= N). Cases are dealt in (recipe, model) order to the
shard with the fewest cases so far (ties: the fewest of this model's), so shard sizes
differ by at most one and each recipe's models, and each model's recipes, spread over
the shards: the fine-tuning recipes (the slow ones) and the slow models land on every
shard, not on one. The split depends only on the list of cases (the project
config), never on the machine or on timing, so every job of a CI matrix computes the same
split and ``compressgate merge`` can tell which shard owed which case.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TypeVar

from compressgate.errors import UserInputError

SHARD_ENV = "COMPRESSGATE_SHARD"
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str | None, *, where: str = "--compressgate-shard") -> Shard | None:
    """``"K/N"`` -> ``Shard``; empty or None -> no sharding; anything else: one line."""
    if text is None or not str(text).strip():
        return None
    match = _FORM.fullmatch(str(text))
    if match:
        index, count = int(match[1]), int(match[2])
        if 1 <= index <= count:
            return Shard(index, count)
    raise UserInputError(f"{where}: expected K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")


def from_env() -> Shard | None:
    return parse(os.environ.get(SHARD_ENV), where=f"${SHARD_ENV}")


def owner(cases: list[tuple[str, str]], count: int) -> dict[tuple[str, str], int]:
    """(model, recipe) -> the 1-based shard that gates it, for ``count`` shards: in
    (recipe, model) order, each case to the shard with the fewest cases, then the fewest
    of this model's, then the lowest number."""
    out: dict[tuple[str, str], int] = {}
    sizes = [0] * count
    per_model: dict[str, list[int]] = {}
    for model, recipe in sorted(set(cases), key=lambda c: (c[1], c[0])):
        mine = per_model.setdefault(model, [0] * count)
        best = min(range(count), key=lambda s: (sizes[s], mine[s], s))
        sizes[best] += 1
        mine[best] += 1
        out[(model, recipe)] = best + 1
    return out


def select(cases: list[T], shard: Shard | None, key=lambda c: c) -> list[T]:
    """The items of ``cases`` (in their order) that ``shard`` gates; all of them
    without a shard. ``key`` gives an item's (model, recipe)."""
    if shard is None:
        return list(cases)
    owners = owner([key(c) for c in cases], shard.count)
    return [c for c in cases if owners[key(c)] == shard.index]
