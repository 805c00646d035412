"""What a gate session keeps per case (model, recipe): the row every check reads, the
latency pairs timed in this process and in fresh ones, and the accepted file with the
figures measured against it. Each is computed once however many checks read it; a
baseline update forgets what came from the old accepted file (``forget``)."""

from __future__ import annotations

from typing import Any, Protocol

from compressgate.gate import baselines
from compressgate.measure.stats import SideBySide
from compressgate.pipeline.record import ResultRow

Key = tuple[str, str]


class Session(Protocol):
    """What the state reads of its session, each time it needs it: tests swap the runner
    or the settings of a session already made."""

    settings: Any

    @property
    def runner(self) -> Any: ...

    def prepare(self) -> None:
        """Compute every case up front, once."""


class CaseState:
    """The per-case figures of one session, measured through its runner."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._rows: dict[Key, ResultRow] = {}
        self._latency: dict[Key, Any] = {}
        # Latency pairs timed in fresh processes, per case (a ratio's mode can differ
        # from one process to the next).
        self._fresh_latency: dict[Key, tuple] = {}
        self._accepted: dict[Key, tuple[bytes | None, str]] = {}
        self._sides: dict[Key, tuple[SideBySide | None, str]] = {}
        self._side_latency: dict[Key, Any] = {}

    @property
    def runner(self):
        return self._session.runner

    @property
    def _pairs(self) -> int:
        """Latency pairs per measurement."""
        return self._session.settings.latency_pairs

    def row(self, model: str, recipe: str) -> ResultRow:
        """The case's summary row, computed once however many checks read it."""
        key = (model, recipe)
        if key not in self._rows:
            self._session.prepare()
            self._rows[key] = self.runner.row(model, recipe)
        return self._rows[key]

    def latency(self, model: str, recipe: str, *, fresh: bool = False):
        key = (model, recipe)
        self._session.prepare()
        if fresh or key not in self._latency:
            self._latency[key] = self.runner.latency(model, recipe, pairs=self._pairs)
            self._fresh_latency.pop(key, None)
        return self._latency[key]

    def latency_runs(self, model: str, recipe: str, count: int) -> tuple:
        """``count`` processes' latency pairs: this one's (``latency``) and fresh ones,
        measured only as far as earlier calls have not (() when not converted)."""
        first, key = self.latency(model, recipe), (model, recipe)
        if first is None:
            return ()
        fresh = self._fresh_latency.get(key, ())
        if len(fresh) < count - 1:
            fresh += self.runner.latency_processes(model, recipe, count - 1 - len(fresh),
                                                   pairs=self._pairs)
            self._fresh_latency[key] = fresh
        return (first, *fresh[:count - 1])

    def accepted(self, model: str, recipe: str,
                 stored: baselines.Baseline) -> tuple[bytes | None, str]:
        """(the accepted file, why not) for a stored baseline, read once per session."""
        key = (model, recipe)
        if key not in self._accepted:
            self._accepted[key] = stored.accepted()
        return self._accepted[key]

    def side_by_side(self, model: str, recipe: str,
                     stored: baselines.Baseline) -> tuple[SideBySide | None, str]:
        """The accepted file measured in this run next to the new one (once per case)."""
        key = (model, recipe)
        if key not in self._sides:
            data, why = self.accepted(model, recipe, stored)
            side = None
            if data is not None and self.runner.outcome(model, recipe).converted:
                side = self.runner.side_by_side(model, recipe, data)
            self._sides[key] = (side, why)
        return self._sides[key]

    def latency_against(self, model: str, recipe: str, stored: baselines.Baseline | None, *,
                        fresh: bool = False):
        """(pairs new vs accepted, note, identical): timed only when the accepted file
        differs; ``identical`` when it is the new file itself."""
        if stored is None or not stored.metrics.get("converted", True):
            return None, "", False
        data, why = self.accepted(model, recipe, stored)
        if data is None:
            return None, f"{why}: a slower artifact cannot be timed against it here", False
        outcome = self.runner.outcome(model, recipe)
        if outcome.tflite == data:
            return None, "identical bytes to the accepted file: the same artifact", True
        key = (model, recipe)
        if fresh or key not in self._side_latency:
            self._side_latency[key] = self.runner.latency_against(
                model, recipe, data, pairs=self._pairs)
        return self._side_latency[key], "", False

    def forget(self, model: str, recipe: str) -> None:
        """Drop what came from the case's accepted file: its baseline was rewritten."""
        for cache in (self._accepted, self._sides, self._side_latency, self._fresh_latency):
            cache.pop((model, recipe), None)
