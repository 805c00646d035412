"""What a gate session keeps per case (model, recipe): the row every check reads, the
latency pairs timed in this process and in fresh ones, the accepted file with the
figures measured against it, and what the project's boards measured. Each is computed
once however many checks read it; a baseline update forgets what came from the old
accepted file (``forget``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from compressgate.gate import baselines
from compressgate.measure.stats import SideBySide
from compressgate.pipeline.record import ResultRow

Key = tuple[str, str]


class Session(Protocol):
    """What the state reads of its session, each time it needs it: tests swap the runner
    or the settings of a session already made."""

    settings: Any
    project: Any

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
        # What the project's boards measured (``board_runs``): kept across baseline updates.
        self._boards: dict[Key, tuple] = {}

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

    def side_reason(self, model: str, recipe: str, stored: baselines.Baseline | None
                    ) -> tuple[bytes | None, str, bool]:
        """(the accepted file, why it is not timed against the new one, identical)."""
        if stored is None or not stored.metrics.get("converted", True):
            return None, "", False
        data, why = self.accepted(model, recipe, stored)
        if data is None:
            return None, f"{why}: a slower artifact cannot be timed against it here", False
        if self.runner.outcome(model, recipe).tflite == data:
            return data, "identical bytes to the accepted file: the same artifact", True
        return data, "", False

    def latency_against(self, model: str, recipe: str, stored: baselines.Baseline | None, *,
                        fresh: bool = False):
        """(pairs new vs accepted, note, identical): timed only when the accepted file
        differs; ``identical`` when it is the new file itself."""
        data, note, identical = self.side_reason(model, recipe, stored)
        if data is None or identical:
            return None, note, identical
        key = (model, recipe)
        if fresh or key not in self._side_latency:
            self._side_latency[key] = self.runner.latency_against(
                model, recipe, data, pairs=self._pairs)
        return self._side_latency[key], "", False

    def board_runs(self, model: str, recipe: str,
                   load: Callable[[], baselines.Baseline | None]) -> tuple:
        """What each of the project's boards measured for the case (``BoardRun``s), once;
        () when the file did not convert. ``load`` reads the case's baseline."""
        from compressgate.pipeline import boards

        key = (model, recipe)
        if key not in self._boards:
            self._session.prepare()
            runs: tuple = ()
            if self.runner.outcome(model, recipe).converted:
                stored = load()
                accepted = self.accepted(model, recipe, stored)[0] \
                    if stored is not None and stored.metrics.get("converted", True) else None
                settings = self._session.settings
                runs = tuple(boards.measure(self.runner, model, recipe, host, accepted,
                                            pairs=settings.latency_pairs,
                                            latency=settings.latency)
                             for host in self._session.project.boards.values())
            self._boards[key] = runs
        return self._boards[key]

    def forget(self, model: str, recipe: str) -> None:
        """Drop what came from the case's accepted file: its baseline was rewritten."""
        for cache in (self._accepted, self._sides, self._side_latency, self._fresh_latency):
            cache.pop((model, recipe), None)
