"""The pipeline's records, typed: a recipe's result on a model (``RecipeResult``, the file
and its measurement, what the result cache stores) and the row measured from it.

``Runner.row`` builds a ``ResultRow``; the gate's rules, the session, the baselines and the
diagnosis read its attributes. JSON (``summary.json``, the shards' reports) goes through
``to_dict`` / ``from_dict`` only, flat and under the keys ``summary.json`` has always had:
a group of figures that was not measured (no file, no float reference, no latency) is
absent from the dict, as it always was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from compressgate.backends.equalization import DfqReport
from compressgate.measure import litert, memory, targets
from compressgate.measure.coverage import DelegateCoverage
from compressgate.measure.stats import LatencyPairs
from compressgate.recipes import REFERENCE

ACCURACY = "accuracy"


@dataclass(frozen=True)
class RecipeResult:
    """A recipe's result on one model: the ``.tflite`` bytes and what they measure."""

    model: str
    recipe: str
    tflite: bytes | None
    error: str | None
    measurement: litert.Measurement | None
    finetune_seconds: float = 0.0
    convert_seconds: float = 0.0
    keras_agreement: float | None = None
    cached: bool = False
    # Mixed precision: the Keras layers kept float, and the keep_float auto search.
    kept_float: tuple[str, ...] | None = None
    search: dict[str, Any] | None = None
    # A fine-tune whose worker a signal killed, computed again with oneDNN off: why.
    fallback: str | None = None
    # The float Keras model's test accuracy after the float fine-tunes, before conversion.
    finetuned_accuracy: float | None = None
    # Data-free quantization: what it equalized, absorbed and corrected.
    dfq: DfqReport | None = None

    @property
    def converted(self) -> bool:
        return self.tflite is not None and self.measurement is not None

    def to_doc(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc.pop("tflite")
        doc.pop("cached")
        doc["dfq"] = self.dfq.to_dict() if self.dfq is not None else None
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], tflite: bytes | None) -> RecipeResult:
        m = doc.get("measurement")
        if m is not None:
            m = litert.Measurement(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in m.items()})
        kept = doc.get("kept_float")
        dfq = doc.get("dfq")
        return cls(**{**doc, "measurement": m, "tflite": tflite, "cached": True,
                      "kept_float": tuple(kept) if kept is not None else None,
                      "dfq": DfqReport.from_dict(dfq) if dfq else None})


@dataclass(frozen=True)
class MemoryFigures:
    """Peak resident bytes of load + allocate + invoke, or why it was not measured."""

    peak_bytes: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {memory.METRIC: self.peak_bytes} | ({"memory_error": self.error}
                                                   if self.error else {})


@dataclass(frozen=True)
class TargetFigures:
    """Where the file runs besides LiteRT with XNNPACK (``compressgate.measure.targets``):
    the runtimes the recipe promises and what was measured on the first ``rows`` rows."""

    declared: tuple[str, ...] = ()
    rows: int | None = None
    kernel_agreement: float | None = None
    kernel_max_quanta: int | None = None
    kernel_max_diff: float | None = None
    tflm_loads: bool | None = None
    tflm_error: str | None = None
    tflm_arena_bytes: int | None = None
    tflm_accuracy: float | None = None
    tflm_ref_agreement: float | None = None
    tflm_max_quanta: int | None = None
    tflm_max_diff: float | None = None
    tflm_version: str | None = None
    litert_rows_accuracy: float | None = None
    # Why nothing was measured (every figure is None then).
    error: str | None = None

    @property
    def tflm(self) -> bool:
        return "tflm" in self.declared

    def to_dict(self) -> dict[str, Any]:
        figures = {name: getattr(self, name) for name in targets.FIELDS}
        return {"targets": list(self.declared), "target_rows": self.rows, **figures} \
            | ({"targets_error": self.error} if self.error else {})

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TargetFigures:
        return cls(tuple(doc.get("targets") or ()), doc.get("target_rows"),
                   **{name: doc.get(name) for name in targets.FIELDS},
                   error=doc.get("targets_error"))


@dataclass(frozen=True)
class ClusterFigures:
    """Distinct values per output channel of the weight tensors (max, mean over tensors);
    None each when the file has no weight tensor to count."""

    max: int | None = None
    mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"clusters_max": self.max, "clusters_mean": self.mean}


# LatencyFigures field -> its key in a row.
LATENCY_KEYS = {"ratio": "latency_ratio", "low": "latency_ratio_low",
                 "high": "latency_ratio_high", "ms": "latency_ms",
                 "float_ms": "float_latency_ms", "pairs": "latency_pairs",
                 "others_running": "others_running"}


@dataclass(frozen=True)
class LatencyFigures:
    """This run's interleaved latency against the float reference (``LatencyPairs``)."""

    ratio: float
    low: float | None = None
    high: float | None = None
    ms: float | None = None
    float_ms: float | None = None
    pairs: int | None = None
    others_running: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in LATENCY_KEYS.items()}

    @classmethod
    def of(cls, pairs: LatencyPairs | None) -> LatencyFigures | None:
        return None if pairs is None else cls.from_dict(pairs.to_dict())

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LatencyFigures | None:
        if doc.get("latency_ratio") is None:
            return None
        return cls(**{name: doc.get(key) for name, key in LATENCY_KEYS.items()})


@dataclass(frozen=True)
class BoardFigures:
    """What one board measured for a result (``compressgate.measure.remote``): the new
    file on the board against the float reference and the accepted file, and its outputs
    against this (CI) machine's; or, in ``error``, the one line saying why nothing."""

    board: str
    ssh: str
    machine_class: str | None = None
    cpu: str | None = None
    # "ai-edge-litert 2.3.0, Python 3.11.7" on the board.
    runtime: str | None = None
    peak_memory: int | None = None
    accepted_memory: int | None = None
    memory_error: str | None = None
    # New against float on the board, and new against accepted (both timed there).
    latency: LatencyFigures | None = None
    latency_vs_accepted: LatencyFigures | None = None
    # The board's outputs of the new file against this machine's, on the test split.
    rows: int | None = None
    output_agreement: float | None = None
    output_max_quanta: int | None = None
    output_max_diff: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        for name in ("latency", "latency_vs_accepted"):
            figures = getattr(self, name)
            doc[name] = figures.to_dict() if figures is not None else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BoardFigures:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        for name in ("latency", "latency_vs_accepted"):
            if values.get(name) is not None:
                values[name] = LatencyFigures.from_dict(values[name])
        return cls(**values)


# Flat keys filled from the measurement of the recipe's file, in row order.
_MEASURED = ("accuracy", "size_bytes", "gzip_bytes", "sparsity", "input_dtype",
             "output_dtype", "ops", "float_ops")
_FILE = ("tflite_sha256", "op_versions", "min_runtime")
_REFERENCE = ("float_accuracy", "float_size_bytes", "float_gzip_bytes")
_METRIC_SETTINGS = ("higher_is_better", "max_loss", "metric_tolerance")
_COMPARED = ("accuracy_drop_pts", "size_ratio", "gzip_ratio", "float_agreement",
             "output_sqnr_db")
_TUPLES = ("ops", "float_ops", "kept_float")


@dataclass(frozen=True)
class ResultRow:
    """One model x recipe: its figures, and its ratios to the float reference.

    ``None`` means not measured: a file that did not convert has no sizes, a model scored
    by another metric has no accuracy, a row without latency has no ``latency``.
    """

    model: str
    recipe: str
    converted: bool
    error: str | None = None
    cached: bool = False
    finetune_seconds: float = 0.0
    convert_seconds: float = 0.0
    # The recipe's file, measured by LiteRT.
    accuracy: float | None = None
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    sparsity: float | None = None
    input_dtype: str | None = None
    output_dtype: str | None = None
    ops: tuple[str, ...] = ()
    float_ops: tuple[str, ...] = ()
    # Only for a converted file.
    memory: MemoryFigures | None = None
    targets: TargetFigures | None = None
    tflite_sha256: str | None = None
    op_versions: list[list[Any]] | None = None
    min_runtime: str | None = None
    clusters: ClusterFigures | None = None
    # Which ops XNNPACK took and which run on the built-in kernels, on this machine.
    coverage: DelegateCoverage | None = None
    test_rows: int | None = None
    # Digests of the model, data and recipe settings the file came from.
    inputs: dict[str, str] | None = None
    # The float reference.
    float_accuracy: float | None = None
    float_size_bytes: int | None = None
    float_gzip_bytes: int | None = None
    # The model's metric (accuracy, or a custom one scored in its own units).
    metric: str = ACCURACY
    score: float | None = None
    float_score: float | None = None
    higher_is_better: bool | None = None
    max_loss: float | None = None
    metric_tolerance: float | None = None
    metric_loss: float | None = None
    # Against the float reference (both measured).
    accuracy_drop_pts: float | None = None
    size_ratio: float | None = None
    gzip_ratio: float | None = None
    float_agreement: float | None = None
    output_sqnr_db: float | None = None
    keras_agreement: float | None = None
    class_accuracy: dict[Any, Any] | None = None
    float_class_accuracy: dict[Any, Any] | None = None
    # Mixed precision: the Keras layers kept float.
    kept_float: tuple[str, ...] | None = None
    # Computed again with TensorFlow's oneDNN optimizations off after a native crash.
    fallback: str | None = None
    # Pruning / clustering / channel pruning: the float model's points lost by those
    # fine-tunes alone (Keras, test split), before quantization and conversion.
    finetune_drop_pts: float | None = None
    # Data-free quantization: the pairs equalized (``first>second``), biases absorbed
    # and corrected, or the one line saying there was no pair.
    dfq: DfqReport | None = None
    latency: LatencyFigures | None = None
    # The same file measured on the project's boards (the device check).
    boards: tuple[BoardFigures, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.recipe

    @property
    def is_accuracy(self) -> bool:
        return self.metric == ACCURACY

    @property
    def is_reference(self) -> bool:
        return self.recipe == REFERENCE

    @property
    def measured(self) -> bool:
        return self.size_bytes is not None

    @property
    def peak_memory(self) -> int | None:
        return self.memory.peak_bytes if self.memory is not None else None

    def with_latency(self, latency: LatencyFigures | None) -> ResultRow:
        return dataclasses.replace(self, latency=latency)

    def with_boards(self, boards: tuple[BoardFigures, ...]) -> ResultRow:
        return dataclasses.replace(self, boards=boards)

    def to_dict(self) -> dict[str, Any]:
        """The flat row of ``summary.json`` (keys in the order the runner adds them)."""
        doc: dict[str, Any] = {k: getattr(self, k) for k in (
            "model", "recipe", "converted", "error", "cached", "finetune_seconds",
            "convert_seconds")}
        if self.measured:
            doc.update({k: getattr(self, k) for k in _MEASURED})
        if self.converted:
            doc.update(self.memory.to_dict() if self.memory else {})
            doc.update(self.targets.to_dict() if self.targets else {})
            if any(getattr(self, k) is not None for k in _FILE):
                doc.update({k: getattr(self, k) for k in _FILE})
            doc.update(self.clusters.to_dict() if self.clusters else {})
            doc.update(self.coverage.to_dict() if self.coverage else {})
            doc.update({"test_rows": self.test_rows, "inputs": self.inputs})
        if self.float_size_bytes is not None:
            doc.update({k: getattr(self, k) for k in _REFERENCE})
        if not self.is_accuracy:
            doc.update({"accuracy": None, "float_accuracy": None})
        doc.update({"metric": self.metric, "score": self.score, "float_score": self.float_score})
        if not self.is_accuracy:
            doc.update({k: getattr(self, k) for k in _METRIC_SETTINGS})
        if self.metric_loss is not None:
            doc["metric_loss"] = self.metric_loss
        if self.size_ratio is not None:
            doc.update({k: getattr(self, k) for k in _COMPARED})
        for name in ("keras_agreement", "class_accuracy", "float_class_accuracy",
                     "kept_float", "fallback", "finetune_drop_pts"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        doc.update(self.dfq.to_dict() if self.dfq else {})
        doc.update(self.latency.to_dict() if self.latency else {"latency_ratio": None})
        if self.boards:
            doc["boards"] = [board.to_dict() for board in self.boards]
        return {k: list(v) if k in _TUPLES and v is not None else v for k, v in doc.items()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ResultRow:
        """A row from its flat dict (``to_dict``, ``summary.json``); keys it does not
        know (the verdict a report adds) are ignored, absent figures are None."""
        names = {f.name for f in dataclasses.fields(cls)} - {
            "memory", "targets", "clusters", "coverage", "latency", "boards", "dfq"}
        values = {k: v for k, v in doc.items() if k in names}
        values.update({k: tuple(values[k]) for k in _TUPLES if values.get(k) is not None})
        if memory.METRIC in doc or "memory_error" in doc:
            values["memory"] = MemoryFigures(doc.get(memory.METRIC), doc.get("memory_error"))
        if "targets" in doc or any(k in doc for k in (*targets.FIELDS, "targets_error")):
            values["targets"] = TargetFigures.from_dict(doc)
        if "clusters_max" in doc:
            values["clusters"] = ClusterFigures(doc["clusters_max"], doc.get("clusters_mean"))
        values["coverage"] = DelegateCoverage.from_dict(doc)
        values["latency"] = LatencyFigures.from_dict(doc)
        values["dfq"] = DfqReport.from_dict(doc)
        values["boards"] = tuple(BoardFigures.from_dict(b) for b in doc.get("boards") or ())
        values.setdefault("converted", False)
        return cls(**values)
