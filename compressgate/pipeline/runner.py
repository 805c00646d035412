"""Run recipes on models and measure them: model + data -> recipe -> ``.tflite`` -> row.

One ``Runner`` serves both ``compressgate run`` and the pytest gate: every model x recipe
is compressed at most once per process (and once per cache key on disk), the float
reference first, since every drop and ratio is measured against it. The row's figures
are worked out in ``compressgate.pipeline.rows``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compressgate import __version__
from compressgate.backends import candidate, litert_quant
from compressgate.backends.protocol import Backend
from compressgate.errors import UserInputError
from compressgate.measure import coverage, litert, machine, memory, offload, targets
from compressgate.measure import threads as thread_figures
from compressgate.measure.coverage import DelegateCoverage
from compressgate.measure.processes import fresh_latency, process_slowdown
from compressgate.measure.stats import LatencyPairs, SideBySide, paired_outcome
from compressgate.measure.tflm import version as tflm_version
from compressgate.measure.threads import ThreadRun
from compressgate.pipeline import isolation
from compressgate.pipeline.cache import ResultCache, key
from compressgate.pipeline.record import (
    LatencyFigures,
    MemoryFigures,
    RecipeResult,
    ResultRow,
    TargetFigures,
)
from compressgate.pipeline.rows import cluster_fields, file_fields, measured_fields
from compressgate.project.models import Dataset, ModelSpec, path_sha256
from compressgate.recipes import (
    REFERENCE,
    Recipe,
    declared_targets,
    with_reference,
)

RESULT_FORMAT = 2
# Recipe fields that plant faults (tests of the gate); not part of a result's inputs.
FAULT_KNOBS = ("calibration_scale", "repeat_invoke", "perturb_weights", "process_slowdown")


def print_nothing(line: str) -> None:
    """The default log (a module-level function, so a Runner's log pickles to workers)."""


def tf_backend() -> Backend:
    from compressgate.backends import tf

    return tf  # the module satisfies the protocol


@dataclass
class Runner:
    """Computes ``RecipeResult``s and summary rows for model specs and recipes."""

    specs: dict[str, ModelSpec]
    cache: ResultCache
    backend_factory: Callable[[], Backend] = tf_backend
    log: Callable[[str], None] = print_nothing
    _results: dict[tuple[str, Recipe], RecipeResult] = field(default_factory=dict)
    _data: dict[str, Dataset] = field(default_factory=dict)
    _fingerprints: dict[str, str] = field(default_factory=dict)
    _inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    _backend: Backend | None = None
    _memory: dict[str, MemoryFigures] = field(default_factory=dict)  # by the file's sha256
    _coverage: dict[str, DelegateCoverage] = field(default_factory=dict)  # likewise
    # Compute each result in a worker process, so that a crash or hang in native code
    # fails that result only (see ``isolation``); the worker is reused across results.
    isolate: bool = True
    # Seconds per phase of the last ``run`` (see there).
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self.backend_factory()
        return self._backend

    def spec(self, model: str) -> ModelSpec:
        try:
            return self.specs[model]
        except KeyError:
            raise UserInputError(
                f"unknown model {model!r} (expected one of {', '.join(self.specs)})"
            ) from None

    def data(self, model: str) -> Dataset:
        if model not in self._data:
            self._data[model] = self.spec(model).load_data()
        return self._data[model]

    def recipe(self, model: str, recipe: str | Recipe) -> Recipe:
        if isinstance(recipe, str):
            return self.spec(model).resolve(recipe)
        return self.spec(model).recipe(recipe)

    def cache_key(self, model: str, recipe: Recipe) -> str:
        extra: dict[str, Any] = {"litert_quantizer": litert_quant.version()} \
            if recipe.litert_recipe else {}
        if recipe.candidate is not None:  # the file's bytes, or the build's inputs
            extra["candidate"] = candidate.digest(self.spec(model), recipe.name,
                                                  recipe.candidate)
        return key({**extra,
            "result_format": RESULT_FORMAT,
            "compressgate": __version__,
            # Fine-tuned and calibrated bytes move with the class (oneDNN's kernels): a
            # cache restored from a runner of another class must not hand its bytes to
            # this one, whose baseline update would record them as this build's.
            "machine_class": machine.machine_class(machine.this_machine()),
            "model": self._fingerprint(model),
            "recipe": recipe.settings(),
            "static_batch": self.spec(model).static_batch,
            "versions": self.backend.versions(),
        })

    def _fingerprint(self, model: str) -> str:
        """sha256 of the model's files, read once per process (not once per recipe)."""
        if model not in self._fingerprints:
            spec = self.spec(model)
            fingerprint = spec.file_fingerprint()
            if fingerprint is None:  # built by a function: digest what it returns
                fingerprint = key({
                    "model": self.backend.model_digest(spec) if spec.model.is_function
                    else path_sha256(spec.model.path),
                    "data": self.data(model).digest() if spec.data.is_function
                    else path_sha256(spec.data.path)})
            self._fingerprints[model] = fingerprint
        return self._fingerprints[model]

    def input_digests(self, model: str, recipe: str | Recipe) -> dict[str, str]:
        """sha256 of what a result came from: the model, the data, and the recipe's
        settings (not its name or description, which change no byte; not its planted-fault
        knobs, which stand for faults nobody chose)."""
        if model not in self._inputs:
            spec = self.spec(model)
            self._inputs[model] = {
                "model": self.backend.model_digest(spec) if spec.model.is_function
                else path_sha256(spec.model_path),
                "data": self.data(model).digest() if spec.data.is_function
                else path_sha256(spec.data_path)}
        settings = {k: v for k, v in self.recipe(model, recipe).settings().items()
                    if k not in (*FAULT_KNOBS, "name", "description")}
        return {**self._inputs[model], "recipe": key(settings)}

    def side_by_side(self, model: str, recipe: str | Recipe, accepted: bytes,
                     *, with_memory: bool = True):
        """The accepted ``.tflite`` run in this process on the test split next to the
        new result: paired hits, agreement, output difference, peak memory."""
        out, spec, data = self.outcome(model, recipe), self.spec(model), self.data(model)
        assert out.tflite is not None and out.measurement is not None
        new = np.asarray(out.measurement.outputs, dtype=np.float64)
        identical = out.tflite == accepted
        if identical:
            old = new
        else:
            old = np.round(litert.predict(accepted, data.x_test, batch=spec.static_batch)
                           .reshape(len(data.x_test), -1).astype(np.float64), 6)
        spread = float(np.max(old) - np.min(old)) or 1.0
        new_top1, old_top1 = np.argmax(new, axis=-1), np.argmax(old, axis=-1)
        metric = spec.metric
        fields: dict[str, Any] = {
            "identical": identical,
            "agreement": float(np.mean(new_top1 == old_top1)),
            "max_output_diff": float(np.max(np.abs(new - old))) / spread if new.size else 0.0,
        }
        if metric.is_accuracy:
            fields["paired"] = paired_outcome(data.y_test, old_top1, new_top1)
            fields["accepted_accuracy"] = float(np.mean(old_top1 == np.asarray(data.y_test)))
        else:
            fields["accepted_score"] = metric.score(data.y_test, old.astype(np.float32))
        if with_memory and not identical:
            fields["accepted_memory"] = memory.peak_memory(accepted)[0]
        # The accepted file's coverage on this machine, in this run: judged on any machine.
        fields["accepted_coverage"] = self.delegate_coverage(accepted, name=f"{model} accepted")
        return SideBySide(**fields)

    def latency_against(self, model: str, recipe: str | Recipe, accepted: bytes, *,
                        pairs: int = litert.LATENCY_PAIRS) -> LatencyPairs | None:
        """Interleaved latency of the new result (candidate) against the accepted file
        (reference), on this machine, in this run."""
        resolved = self.recipe(model, recipe)
        out = self.outcome(model, resolved)
        if not out.converted:
            return None
        return litert.interleaved_latency(accepted, out.tflite, self.sample(model),
                                           pairs=pairs, candidate_repeat=resolved.repeat_invoke)

    def outcome(self, model: str, recipe: str | Recipe) -> RecipeResult:
        """The (memoized, cached) outcome of ``recipe`` on ``model``."""
        resolved = self.recipe(model, recipe)
        memo_key = (model, resolved)
        if memo_key in self._results:
            return self._results[memo_key]
        cache_key = self.cache_key(model, resolved)
        with self.cache.locked(cache_key):
            hit = self.cache.get(cache_key)
            result = self._reused(model, resolved, *hit) if hit is not None else None
            if result is not None:
                self.log(f"{model} x {resolved.name}: cached (re-measured)")
            else:
                result, transient = self._compute_isolated(model, resolved)
                if resolved.candidate is not None and result.converted:
                    result = self._vetted(model, resolved, result)
                if not transient:  # a crash or timeout may not happen again: not cached
                    self.cache.put(cache_key, result.to_doc(), result.tflite)
        self._results[memo_key] = result
        return result

    def _vetted(self, model: str, recipe: Recipe, result: RecipeResult) -> RecipeResult:
        """A candidate whose inputs or outputs differ from the float reference's is a
        failed conversion naming both (the reference is computed first)."""
        reference = self.outcome(model, "float")
        if not reference.converted:
            return result
        assert result.tflite is not None and reference.tflite is not None
        problem = candidate.shape_mismatch(
            result.tflite, reference.tflite,
            name=f"model {model!r}, candidate {recipe.name}")
        return result if problem is None else self._failed(model, recipe, problem)

    def _reused(self, model: str, recipe: Recipe, doc: dict[str, Any],
                tflite: bytes | None) -> RecipeResult | None:
        """A cached result with its measurement taken again from its ``.tflite`` (the
        accuracy, sizes, outputs and ops the gate judges come from the file, not the
        record); None when LiteRT refuses the file (computed again)."""
        result = RecipeResult.from_doc(doc, tflite)
        if tflite is None:
            return result  # a failed conversion: nothing to measure
        spec, data = self.spec(model), self.data(model)
        try:
            measured = litert.measure(tflite, data.x_test, data.y_test,
                                      batch=spec.static_batch, name=f"{model} x {recipe.name}")
        except UserInputError as exc:
            self.log(f"{model} x {recipe.name}: cached file refused by LiteRT ({exc}); "
                     "computing it again")
            return None
        return replace(result, measurement=measured)

    def _compute_isolated(self, model: str, recipe: Recipe) -> tuple[RecipeResult, bool]:
        """(result, whether it is a worker crash or timeout) of ``_compute``, run in
        this process's worker (``isolation.shared``) when ``isolate`` is set. A
        fine-tune whose worker a signal killed runs once more in a fresh worker with
        TensorFlow's oneDNN optimizations off (their AVX-512 kernels have crashed
        fine-tunes); the result says that it did."""
        if not self.isolate:
            return self._compute(model, recipe), False
        args = (_compute_alone, self.spec(model), recipe, self.backend_factory, self.log,
                _settings())
        result, failure = isolation.shared().run(*args)
        if (failure is not None and recipe.needs_finetune and isolation.native_crash(failure)
                and isolation.onednn_on()):
            crash = failure.split(";")[0]
            self.log(f"{model} x {recipe.name}: {crash}; once more in a fresh worker with "
                     f"{isolation.ONEDNN_ENV}=0")
            result, second = isolation.without_onednn(*args)
            if second is not None:
                failure = f"{failure}; again with {isolation.ONEDNN_ENV}=0: {second}"
            else:
                assert result is not None
                return replace(result, fallback=f"{crash}; computed again in a fresh worker "
                                                f"with {isolation.ONEDNN_ENV}=0"), False
        if failure is not None:
            return self._failed(model, recipe, failure), True
        assert result is not None
        return result, False

    def _failed(self, model: str, recipe: Recipe, failure: str) -> RecipeResult:
        self.log(f"{model} x {recipe.name}: not converted: {failure}")
        return RecipeResult(model, recipe.name, None, failure, None)

    def _compute(self, model: str, recipe: Recipe) -> RecipeResult:
        spec, data = self.spec(model), self.data(model)
        start = time.perf_counter()
        artifact = candidate.compress(self.backend, spec, recipe, data)
        if artifact.tflite is None:
            self.log(f"{model} x {recipe.name}: not converted: {artifact.error}")
            return RecipeResult(model, recipe.name, None, artifact.error, None,
                                artifact.finetune_seconds, artifact.convert_seconds)
        try:
            m = litert.measure(artifact.tflite, data.x_test, data.y_test,
                                batch=spec.static_batch, name=f"{model} x {recipe.name}")
        except UserInputError as exc:  # LiteRT refused what the converter wrote
            return RecipeResult(model, recipe.name, None, str(exc), None,
                                artifact.finetune_seconds, artifact.convert_seconds)
        agreement = None
        if artifact.keras_top1 is not None:
            agreement = float(np.mean(np.asarray(m.top1) == artifact.keras_top1))
        self.log(f"{model} x {recipe.name}: accuracy {m.accuracy:.4f}, "
                 f"{m.size_bytes} bytes ({time.perf_counter() - start:.1f} s: "
                 f"fine-tune {artifact.finetune_seconds:.1f} s, "
                 f"convert {artifact.convert_seconds:.1f} s)")
        return RecipeResult(model, recipe.name, artifact.tflite, None, m,
                            artifact.finetune_seconds, artifact.convert_seconds, agreement,
                            kept_float=getattr(artifact, "kept_float", None),
                            search=getattr(artifact, "search", None),
                            finetuned_accuracy=getattr(artifact, "finetuned_accuracy", None),
                            factorized=getattr(artifact, "factorized", None),
                            dfq=getattr(artifact, "dfq", None))

    def latency(self, model: str, recipe: str | Recipe, *,
                pairs: int = litert.LATENCY_PAIRS) -> LatencyPairs | None:
        """Interleaved latency of ``recipe`` against ``float`` on one test row, or None
        when either did not convert. Never cached: it is a fact about this run."""
        resolved = self.recipe(model, recipe)
        new, reference = self.outcome(model, resolved), self.outcome(model, REFERENCE)
        if not (new.converted and reference.converted):
            return None
        return litert.interleaved_latency(
            reference.tflite, new.tflite, self.sample(model), pairs=pairs,
            candidate_repeat=resolved.repeat_invoke * process_slowdown(resolved.process_slowdown))

    def threads(self, model: str, recipe: str | Recipe) -> tuple[ThreadRun, ...]:
        """The model's ``latency_threads`` beyond one: ``recipe`` against float at each,
        and its outputs there against one thread's; () when there are none or either
        did not convert. Never cached: the timing is a fact about this run."""
        spec, resolved = self.spec(model), self.recipe(model, recipe)
        new, reference = self.outcome(model, resolved), self.outcome(model, REFERENCE)
        if not (new.converted and reference.converted):
            return ()
        return tuple(thread_figures.measure(reference.tflite, new.tflite, self.sample(model),
                                            self.data(model).x_test, n,
                                            batch=spec.static_batch)
                     for n in spec.latency_threads if n != 1)

    def latency_processes(self, model: str, recipe: str | Recipe, processes: int, *,
                          pairs: int = litert.LATENCY_PAIRS) -> tuple[LatencyPairs, ...]:
        """``latency`` measured in ``processes`` fresh processes, one after another (a
        ratio can differ from one process to the next); () when either did not convert."""
        resolved = self.recipe(model, recipe)
        new, reference = self.outcome(model, resolved), self.outcome(model, REFERENCE)
        if not (new.converted and reference.converted):
            return ()
        return fresh_latency(reference.tflite, new.tflite, self.sample(model),
                             processes=processes, pairs=pairs,
                             candidate_repeat=resolved.repeat_invoke,
                             process_slowdown=resolved.process_slowdown)

    def where_time_goes(self, model: str, recipe: str | Recipe) -> str:
        """One line: the ops XNNPACK left to the built-in kernels and the share of one
        inference they take (``offload``), timed here; never cached."""
        out = self.outcome(model, recipe)
        if not out.converted:
            return "not converted: nothing to time"
        assert out.tflite is not None
        cov = self.delegate_coverage(out.tflite, name=f"{model} x {out.recipe}")
        return offload.describe(cov, *offload.builtin_time(out.tflite, self.sample(model), cov))

    def sample(self, model: str) -> np.ndarray:
        """The one test row every latency figure is timed on."""
        return self.data(model).x_test[:1].astype(np.float32)

    def row(self, model: str, recipe: str | Recipe,
            latency: LatencyPairs | None = None) -> ResultRow:
        """One result row: the recipe's figures and its ratios to the float reference."""
        out, ref = self.outcome(model, recipe), self.outcome(model, REFERENCE)
        fields = measured_fields(out, ref, self.spec(model).metric,
                                 lambda: self.data(model).y_test)
        if out.converted:
            resolved, m = self.recipe(model, recipe), out.measurement
            clustered = resolved.cluster is not None or resolved.promise.max_clusters is not None
            fields.update({"memory": self.memory(out), "targets": self.targets(model, recipe),
                           **file_fields(out.tflite),
                           "clusters": cluster_fields(out.tflite) if clustered else None,
                           "coverage": self.delegate_coverage(
                               out.tflite, name=f"{model} x {out.recipe}"),
                           "test_rows": len(m.top1) if m is not None else None,
                           "inputs": self.input_digests(model, recipe)})
        return ResultRow(model, out.recipe, out.converted, out.error, out.cached,
                         keras_agreement=out.keras_agreement,
                         latency=LatencyFigures.of(latency), **fields)

    def targets(self, model: str, recipe: str | Recipe) -> TargetFigures:
        """The runtimes the recipe promises, and what LiteRT's reference kernels and TFLM
        compute for its file (``compressgate.measure.targets``); cached like a result."""
        resolved, spec, data = self.recipe(model, recipe), self.spec(model), self.data(model)
        declared = declared_targets(resolved)
        tflite = self.outcome(model, resolved).tflite or b""
        rows = "tflm" in declared
        x, y = data.x_test[:targets.ROWS], data.y_test[:targets.ROWS]
        # Deterministic for a file, rows, runtimes and machine class: cached like a result,
        # so the tests and the gate that meet the same file measure it once. The class is
        # in the key since XNNPACK picks its kernels by ISA, and a cache restored from a
        # runner of another class must not stand in for this one's kernel agreement.
        cache_key = key({"targets": targets.FORMAT, "tflite": hashlib.sha256(tflite).hexdigest(),
                         "x": hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(),
                         "y": hashlib.sha256(np.asarray(y).tobytes()).hexdigest(),
                         "batch": spec.static_batch, "tflm_rows": rows,
                         "machine_class": machine.machine_class(machine.this_machine()),
                         "versions": {**self.backend.versions(), "tflm": tflm_version()}})
        hit = self.cache.get(cache_key)
        if hit is not None:
            figures = hit[0]
        else:
            figures = targets.measure(tflite, x, y if spec.metric.is_accuracy else None,
                                      batch=spec.static_batch, tflm_rows=rows)
            if not figures.get("targets_error"):
                self.cache.put(cache_key, figures, None)
        return TargetFigures.from_dict({"targets": list(declared), "target_rows": len(x),
                                        **figures})

    def memory(self, out: RecipeResult) -> MemoryFigures:
        """Peak resident bytes of load + allocate + invoke, from a fresh process, once per
        file and run; never kept in the result cache (a fact about this machine)."""
        tflite = out.tflite or b""
        digest = hashlib.sha256(tflite).hexdigest()
        if digest not in self._memory:
            peak, why = memory.peak_memory(tflite)
            self._memory[digest] = MemoryFigures(peak, why or None)
        return self._memory[digest]

    def delegate_coverage(self, tflite: bytes, *, name: str) -> DelegateCoverage:
        """Which ops XNNPACK takes in ``tflite``, once per file and run; never kept in the
        result cache (it may depend on the machine's ISA and the runtime)."""
        digest = hashlib.sha256(tflite).hexdigest()
        if digest not in self._coverage:
            self._coverage[digest] = coverage.of_file(tflite, name=name)
        return self._coverage[digest]

    def measure_files(self, plan: Iterable[tuple[str, str]], jobs: int) -> None:
        """The outcome of every case of ``plan`` and the peak memory of its file, ``jobs``
        at a time, before anything is timed. Neither figure moves with work beside it (a
        latency pair would): LiteRT's invoke and zlib release the GIL, and a process's
        own peak is its own. One pool for both, so a long re-measurement on one thread
        overlaps memory processes on the other."""
        plan = list(dict.fromkeys(plan))
        computed = {(m, r): self.outcome(m, r) for m, r in plan  # here, one at a time
                    if self.cache.get(self.cache_key(m, self.recipe(m, r))) is None}
        claimed: set[str] = set()  # one file made by two recipes is measured once
        lock = threading.Lock()

        def measure(case: tuple[str, str]) -> None:
            # A cached result is measured again from its file.
            out = computed[case] if case in computed else self.outcome(*case)
            if not out.converted:
                return
            digest = hashlib.sha256(out.tflite or b"").hexdigest()
            with lock:
                if digest in claimed:
                    return
                claimed.add(digest)
            self.memory(out)

        with ThreadPoolExecutor(max(1, jobs)) as pool:  # each thread waits on a child
            list(pool.map(measure, plan))

    def precompute(self, plan: list[tuple[str, str]], jobs: int) -> None:
        """Compute the outcomes of ``plan`` in ``jobs`` worker processes.

        Each worker runs one model x recipe at a time and leaves the result in the cache
        and in this runner. A worker that crashes or overruns the timeout fails its own
        model x recipe (not cached), and a fresh worker takes the next one. Fine-tuning
        recipes go first: they take longest, so the two cores stay busy to the end.
        """
        todo = []
        for model, name in plan:
            recipe = self.recipe(model, name)
            if self.cache.get(self.cache_key(model, recipe)) is None:
                todo.append((model, recipe))
        if jobs <= 1 or len(todo) <= 1:
            return
        todo.sort(key=lambda item: -(item[1].finetune.epochs if item[1].needs_finetune else 0))
        self.log(f"computing {len(todo)} results in {jobs} worker processes")
        with isolation.Workers(jobs) as workers:
            futures = {workers.submit(_compute_in_worker, self.spec(m), r, self.cache.directory,
                                      self.log, self.backend_factory, _settings()): (m, r)
                       for m, r in todo}
            for done, future in enumerate(as_completed(futures), 1):
                model, recipe = futures[future]
                done_here, failure = workers.outcome(future)  # re-raises a user error
                result, figures = done_here if done_here is not None else (None, None)
                if (failure is not None and recipe.needs_finetune
                        and isolation.native_crash(failure) and isolation.onednn_on()):
                    continue  # ``outcome`` retries it with oneDNN off
                if failure is not None:
                    result = self._failed(model, recipe, failure)
                assert result is not None
                self._results[(model, recipe)] = result
                if figures is not None:
                    self._memory.setdefault(hashlib.sha256(result.tflite or b"").hexdigest(),
                                            figures)
                self.log(f"[{done}/{len(todo)}] {model} x {recipe.name}: done")

    def run(self, cases: Iterable[tuple[str, str]], *, with_latency: bool = True,
            jobs: int = 1) -> list[ResultRow]:
        """Rows for (model, recipe) ``cases``, each model's float reference computed
        first; latency measured after all conversions so that training never competes
        with the timed invokes."""
        wanted = list(dict.fromkeys(cases))
        plan = with_reference(wanted)
        start = time.perf_counter()
        self.precompute(plan, jobs)
        for i, (m, r) in enumerate(plan, 1):
            self.log(f"[{i}/{len(plan)}] {m} x {r}")
            self.outcome(m, r)
        self.measure_files(wanted, jobs)
        computed = time.perf_counter()
        rows = []
        for m, r in wanted:
            pairs = self.latency(m, r) if with_latency and r != REFERENCE else None
            rows.append(self.row(m, r, pairs))
        # Where a run's time goes: results (computed, or reused and measured again),
        # then the rows (latency pairs, a fresh process per row for peak memory).
        self.phase_seconds = {"results": round(computed - start, 1),
                              "rows": round(time.perf_counter() - computed, 1)}
        return rows


def _settings() -> dict[str, str]:
    """This process's ``COMPRESSGATE_*`` settings (e.g. the TensorBoard directory), for a
    worker that was started before they were set."""
    return {k: v for k, v in os.environ.items() if k.startswith("COMPRESSGATE_")}


def _use_settings(settings: dict[str, str]) -> None:
    for name in [k for k in os.environ if k.startswith("COMPRESSGATE_") and k not in settings]:
        del os.environ[name]
    os.environ.update(settings)


def _compute_in_worker(spec: ModelSpec, recipe: Recipe, cache_dir: Path,
                       log: Callable[[str], None],
                       backend_factory: Callable[[], Backend] = tf_backend,
                       settings: dict[str, str] | None = None,
                       ) -> tuple[RecipeResult, MemoryFigures | None]:
    """The result, and its file's peak memory (a fresh process's own figure, which the
    other worker's fine-tune beside it does not move), for the parent's run."""
    _use_settings(settings if settings is not None else _settings())
    runner = Runner({spec.name: spec}, ResultCache(cache_dir), backend_factory, log,
                    isolate=False)
    result = runner.outcome(spec.name, recipe)
    if not result.converted:
        return result, None
    # The row's target figures are deterministic for the file and cached: measured
    # here, beside the other worker's conversion, not after every conversion is done.
    try:
        runner.targets(spec.name, recipe)
    except Exception as exc:  # the row measures them again, and says why if it fails
        log(f"{spec.name} x {recipe.name}: targets not measured ahead: {exc}")
    return result, runner.memory(result)


def _compute_alone(spec: ModelSpec, recipe: Recipe, backend_factory: Callable[[], Backend],
                   log: Callable[[str], None],
                   settings: dict[str, str] | None = None) -> RecipeResult:
    """``Runner._compute`` in a worker; the caller holds the cache entry's lock."""
    _use_settings(settings if settings is not None else _settings())
    return Runner({spec.name: spec}, ResultCache(None, enabled=False), backend_factory, log,
                  isolate=False)._compute(spec.name, recipe)
