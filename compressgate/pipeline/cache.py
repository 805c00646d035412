"""Content-addressed cache of recipe results: ``<dir>/<key>/{model.tflite,result.json}``.

The key hashes everything that determines a result (model and data bytes, the recipe
config, library versions, Python, the seed), so a stale entry cannot be served. Entries
are written to a temporary directory and renamed into place, under a file lock so that
parallel workers compute each entry once.

A cache restored in CI is input this run did not compute. The record names the sha256
of its ``.tflite``; an entry whose file does not hash to it (or whose record names none)
is refused with a warning and computed again. The runner re-measures what it reuses
from the file itself (``Runner.outcome``), so an edited record decides nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from compressgate.errors import UserInputError

CACHE_ENV = "COMPRESSGATE_CACHE_DIR"
CACHE_FORMAT = 1
# Longer than any single recipe takes; a lock held this long is a stuck process.
LOCK_TIMEOUT = 1800
# The record's own key for its file's sha256 (not a field of the result it stores).
SHA_KEY = "_tflite_sha256"


class CacheEntryRefused(UserWarning):
    """A cache entry whose file is not the one its record names: computed again."""


def default_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or ".compressgate_cache")


def key(parts: dict[str, Any]) -> str:
    payload = {"format": CACHE_FORMAT, "python": sys.version.split()[0], **parts}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ResultCache:
    """Stores a ``.tflite`` (optional) and a JSON document per key."""

    def __init__(self, directory: Path | None, *, enabled: bool = True) -> None:
        self.directory = directory or default_dir()
        self.enabled = enabled
        self._refused: set[str] = set()

    def _entry(self, key: str) -> Path:
        return self.directory / key

    def get(self, key: str) -> tuple[dict[str, Any], bytes | None] | None:
        if not self.enabled:
            return None
        entry = self._entry(key)
        try:
            doc = json.loads((entry / "result.json").read_text())
            tflite_path = entry / "model.tflite"
            tflite = tflite_path.read_bytes() if tflite_path.exists() else None
        except (OSError, json.JSONDecodeError):
            return None  # absent or damaged: recompute
        recorded = doc.pop(SHA_KEY, None) if isinstance(doc, dict) else None
        why = _mismatch(tflite, recorded)
        if why is not None:
            if key not in self._refused:  # once per run, however often it is asked
                self._refused.add(key)
                warnings.warn(CacheEntryRefused(f"result cache entry {entry}: {why}; "
                                                "computing it again"), stacklevel=2)
            return None
        return doc, tflite

    def put(self, key: str, doc: dict[str, Any], tflite: bytes | None) -> None:
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.directory))
        try:
            if tflite is not None:
                (tmp / "model.tflite").write_bytes(tflite)
            (tmp / "result.json").write_text(json.dumps(
                {**doc, SHA_KEY: _sha256(tflite)}, sort_keys=True))
            target = self._entry(key)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold ``key`` while computing it, so another worker waits instead of redoing it."""
        if not self.enabled:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.directory / f".{key}.lock"), timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except Timeout:
            raise UserInputError(
                f"{lock.lock_file}: held by another process for {LOCK_TIMEOUT} s; remove it "
                "if no other compressgate run is going on") from None
        try:
            yield
        finally:
            lock.release()


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _mismatch(tflite: bytes | None, recorded: str | None) -> str | None:
    """Why an entry's file is not the one its record names (None: it is)."""
    if tflite is None and recorded is None:
        return None  # a failed conversion: no file, nothing to vouch for
    if recorded is None:
        return "its record names no sha256 for model.tflite (written by an older version)"
    if tflite is None:
        return "its record names a model.tflite, but there is none"
    if _sha256(tflite) != recorded:
        return f"model.tflite does not hash to its record's sha256 {recorded[:12]}..."
    return None
