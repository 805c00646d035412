"""A stand-in for the gate session's runner (no TensorFlow): it knows two models, m and n,
each with recipe ptq_int8, refuses any other question, and logs every call, so a test
sees which case each check asked about and how often."""

from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

from compressgate.measure.stats import LatencyPairs, PairedOutcome, SideBySide
from compressgate.measure.threads import ThreadRun
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import get_recipe

R = "ptq_int8"


def make_row(model: str, **overrides) -> dict:
    """A passing ptq_int8 row of ``model`` (as the runner's summary dict)."""
    return {"model": model, "recipe": R, "converted": True, "error": None, "accuracy": 0.97,
            "float_accuracy": 0.975, "accuracy_drop_pts": 0.5, "size_bytes": 1000,
            "size_ratio": 4.0, "gzip_bytes": 900, "gzip_ratio": 4.1, "sparsity": 0.0,
            "input_dtype": "int8", "output_dtype": "int8", "float_ops": [], "test_rows": 400,
            "inputs": {"model": "m" * 64}} | overrides


def pairs(ratio: float, n: int = 24) -> LatencyPairs:
    """A steady ``ratio`` with a little alternating noise (a finite interval)."""
    ref = tuple(1.0 + 0.01 * (i % 3) for i in range(n))
    return LatencyPairs(ref, tuple(r * ratio * (1 + 0.002 * (i % 2)) for i, r in enumerate(ref)))


class Runner:
    """Answers only for (m, ptq_int8) and (n, ptq_int8) unless given more rows."""

    class backend:
        @staticmethod
        def versions():
            return {"tensorflow": "2.21.0"}

    def __init__(self, rows=None, tflite=None, promises=None, ratio=None, side_ratio=None,
                 threads=None):
        self.rows = {(m, R): make_row(m) for m in ("m", "n")} | (rows or {})
        self.tflite = {(m, R): f"TFL3 {m}".encode() for m in ("m", "n")} | (tflite or {})
        self.promises = promises or {}
        # Latency: exact pairs per case, or a ratio (``pairs``); None: nothing to time.
        self.ratio = {key: 0.5 for key in self.rows} | (ratio or {})
        self.side_ratio = side_ratio or {}
        self.thread_runs = threads or {}
        self.calls: list[tuple] = []

    def _key(self, model, recipe):
        assert (model, recipe) in self.rows, (model, recipe)
        return model, recipe

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    def precompute(self, plan, jobs):
        self.calls.append(("precompute",))

    def measure_files(self, plan, jobs):
        self.calls.append(("measure_files",))

    def row(self, model, recipe):
        key = self._key(model, recipe)
        self.calls.append(("row", model, recipe))
        return ResultRow.from_dict({"tflite_sha256": hashlib.sha256(self.tflite[key]).hexdigest(),
                                    **self.rows[key]})

    def recipe(self, model, name):
        self._key(model, name)
        recipe = get_recipe(name)
        promise = self.promises.get((model, name))
        return dataclasses.replace(recipe, promise=promise) if promise else recipe

    def outcome(self, model, recipe):
        key = self._key(model, recipe)
        return SimpleNamespace(tflite=self.tflite[key], converted=self.rows[key]["converted"],
                               error=self.rows[key]["error"])

    def side_by_side(self, model, recipe, accepted):
        key = self._key(model, recipe)
        self.calls.append(("side_by_side", model, recipe, accepted))
        if accepted == self.tflite[key]:
            return SideBySide(True)
        return SideBySide(False, PairedOutcome(400, 0, 0), self.rows[key]["accuracy"], 1.0, 0.0)

    def _pairs(self, key, n):
        ratio = self.ratio[key]
        return ratio if ratio is None or isinstance(ratio, LatencyPairs) else pairs(ratio, n)

    def latency(self, model, recipe, pairs=24):
        key = self._key(model, recipe)
        self.calls.append(("latency", model, recipe, pairs))
        return self._pairs(key, pairs)

    def latency_processes(self, model, recipe, processes, pairs=24):
        key = self._key(model, recipe)
        self.calls.append(("latency_processes", model, recipe, processes, pairs))
        return tuple(self._pairs(key, pairs) for _ in range(processes))

    def latency_against(self, model, recipe, accepted, pairs=24):
        key = self._key(model, recipe)
        self.calls.append(("latency_against", model, recipe, accepted, pairs))
        return globals()["pairs"](self.side_ratio.get(key, 1.0), pairs)

    def where_time_goes(self, model, recipe):
        self._key(model, recipe)
        self.calls.append(("where_time_goes", model, recipe))
        return f"{model} x {recipe}: 2 of 5 ops off XNNPACK"

    def threads(self, model, recipe):
        key = self._key(model, recipe)
        self.calls.append(("threads", model, recipe))
        return self.thread_runs.get(key, (ThreadRun(4, pairs(0.3), 400, 0, 0.0),))


def project(tmp_path, **top):
    """A manifest of the two models the stand-in knows (``top``: more top-level keys) and
    a factory of sessions on it: ``project(tmp_path)(runner, **settings)``. ``.write(**n)``
    rewrites it with more keys for model ``n``."""
    import json

    from compressgate.gate.session import GateSession, Settings

    manifest = tmp_path / "manifest.json"

    def write(**n_entry):
        manifest.write_text(json.dumps({"recipes": ["float", R], **top, "models": {
            "m": {"model": "m.keras", "data": "m.npz"},
            "n": {"model": "n.keras", "data": "n.npz", **n_entry}}}))

    write()

    def session(runner=None, **settings):
        fields = {"baselines": tmp_path / "baselines", "config": manifest, "reports": None,
                  "recipes": (R,), "command": "tox -e gate --"} | settings
        return GateSession(Settings(**fields), runner=runner or Runner())

    session.write, session.baselines, session.manifest = write, tmp_path / "baselines", manifest
    return session
