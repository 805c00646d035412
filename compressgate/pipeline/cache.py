"""Content-addressed cache of recipe results: ``<dir>/<key>/{model.tflite,result.json}``.

The key hashes everything that determines a result (model and data bytes, the recipe
config, library versions, Python, the seed), so a stale entry cannot be served. Entries
are written to a temporary directory and renamed into place, under a file lock so that
parallel workers compute each entry once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
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

    def _entry(self, key: str) -> Path:
        return self.directory / key

    def get(self, key: str) -> tuple[dict[str, Any], bytes | None] | None:
        if not self.enabled:
            return None
        entry = self._entry(key)
        try:
            doc = json.loads((entry / "result.json").read_text())
            tflite_path = entry / "model.tflite"
            return doc, tflite_path.read_bytes() if tflite_path.exists() else None
        except (OSError, json.JSONDecodeError):
            return None  # absent or damaged: recompute

    def put(self, key: str, doc: dict[str, Any], tflite: bytes | None) -> None:
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.directory))
        try:
            if tflite is not None:
                (tmp / "model.tflite").write_bytes(tflite)
            (tmp / "result.json").write_text(json.dumps(doc, sort_keys=True))
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
