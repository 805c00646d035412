"""The gate's run: settings, cases, checks, baseline updates and their records.

The pytest plugin is a thin layer over ``GateSession``: it turns cases into test items,
calls ``run_check`` for each, and prints what the session recorded. Every check returns
a ``Verdict`` plus an optional baseline update; nothing here depends on pytest. What a
case has measured, once per session, is its ``state`` (``compressgate.gate.state``).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressgate.backends import candidate
from compressgate.errors import UserInputError
from compressgate.gate import baselines, device, envelope, rules, shards, update
from compressgate.gate import latency as latency_rules
from compressgate.gate import targets as targets_rules
from compressgate.gate import threads as gate_threads
from compressgate.gate.accept import with_accept
from compressgate.gate.records import CheckOutcome, Row, Status, Update, Verdict
from compressgate.gate.state import CaseState
from compressgate.gate.update import UpdateMode
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.record import ResultRow
from compressgate.project import config
from compressgate.project.models import select
from compressgate.recipes import (
    REFERENCE,
    declared_targets,
    default_recipes,
    with_reference,
)
from compressgate.tolerances import Tolerances

# Checks that need only this run's figures and the recipe's promise.
_ABSOLUTE_CHECKS = {"conversion": rules.check_conversion, "accuracy": rules.check_accuracy,
                    "size": rules.check_size}


# What a project without a config file sets: ``Settings`` takes its defaults from here,
# so a default is written once (in ``ProjectConfig``).
_UNSET = config.ProjectConfig()


@dataclass(frozen=True)
class Settings:
    """One gate run's settings: the project config's (``from_project``) with the command
    line's over them, paths resolved."""

    baselines: Path = Path(_UNSET.baselines)
    # The project config file, or a directory holding one (None: the current directory).
    config: Path | None = None
    reports: Path | None = Path(_UNSET.reports)
    models: tuple[str, ...] = ()
    recipes: tuple[str, ...] = ()
    latency: bool = _UNSET.latency
    update: UpdateMode = "none"
    force: bool = False
    tolerances: Tolerances = _UNSET.tolerances
    latency_pairs: int = _UNSET.latency_pairs
    # Worker processes that compute all results up front (1: compute lazily, per check;
    # the config's unset ``jobs`` means one per core, which the caller decides).
    jobs: int = 1
    # How a person runs the gate, for the "create it with" hint.
    command: str = _UNSET.command
    # A comparison that cannot be made here (no record for this machine class, no
    # accepted artifact) fails instead of being listed as not judged.
    strict: bool = _UNSET.strict
    # Gate only this shard's cases (``compressgate merge`` puts the shards back together).
    shard: shards.Shard | None = None

    @classmethod
    def from_project(cls, project: config.Project, **given: Any) -> Settings:
        """What ``project``'s config sets (its paths against its directory), with
        ``given`` over it."""
        found = project.config
        return cls(**{"baselines": project.baselines, "reports": project.reports,
                      "latency": found.latency, "tolerances": found.tolerances,
                      "latency_pairs": found.latency_pairs, "command": found.command,
                      "strict": found.strict, **given})


@dataclass(frozen=True)
class Case:
    model: str
    recipe: str
    # Why this recipe is expected not to apply to this model (declared in the manifest).
    unsupported: str | None = None
    # The recipe promises a runtime besides LiteRT or a kernel parity (a targets check).
    targets: bool = False
    # The project has boards to measure on (a device check, for every recipe but float).
    boards: bool = False

    @property
    def checks(self) -> tuple[str, ...]:
        if self.unsupported:
            return ("conversion",)
        extra = (rules.TARGETS_CHECK,) if self.targets else ()
        if self.boards and self.recipe != REFERENCE:
            extra += (device.DEVICE_CHECK,)
        if self.recipe == REFERENCE:
            return ("conversion", "accuracy", "baseline", *extra)
        return (*rules.CHECKS, *extra)


class GateSession:
    """Runs checks for (model, recipe) cases against the baselines directory."""

    def __init__(self, settings: Settings, *, runner=None, diagnoser=None) -> None:
        """``runner`` defaults to a ``Runner`` over the models of ``settings.config``;
        tests pass a stand-in with the same methods to exercise the gate without TF."""
        self.settings = settings
        self.project = config.load(settings.config)
        self.specs = self.project.specs
        self._runner = runner
        self._env: dict[str, str] | None = None
        self._prepared = False
        # The (model, recipe, check)s pytest will run here (set by the plugin after
        # collection): ``prepare`` measures ahead only what a collected check reads.
        self.collected: frozenset[tuple[str, str, str]] = frozenset()
        # What each case has measured or read, once however many checks read it.
        self.state = CaseState(self)
        # Explains an accuracy failure: (session, model, recipe) -> note (the plugin passes
        # ``compressgate.diagnosis.report.diagnose_note``; None: no explanation).
        self._diagnoser = diagnoser

    # -- what to gate -------------------------------------------------------------------

    def cases(self) -> list[Case]:
        """The cases this session gates: all selected ones, or its shard's."""
        return shards.select(self.all_cases(), self.settings.shard,
                             key=lambda c: (c.model, c.recipe))

    def all_cases(self) -> list[Case]:
        """Every selected model x recipe, whichever shard gates it."""
        models = select(self.specs, list(self.settings.models))
        cases = []
        for spec in models:
            for name in self.recipe_names(spec.name):
                recipe = spec.resolve(name)
                reason = spec.unsupported(recipe)
                judged = bool(declared_targets(recipe)) \
                    or recipe.promise.min_kernel_agreement is not None
                cases.append(Case(spec.name, name, reason, judged,
                                  bool(self.project.config.boards)))
        return cases

    def recipe_names(self, model: str) -> list[str]:
        """The command line's recipes, else the model's (else the project's, else all)
        followed by its candidates. A command-line name may be a candidate's; a recipe
        the model does not have is one line naming it."""
        spec = self.specs[model]
        if self.settings.recipes:  # another model's candidate is not this model's
            others = {n for other in self.specs.values() for n in other.candidates}
            names = [n for n in self.settings.recipes if n in spec.candidates or n not in others]
        else:
            names = (list(spec.recipes or ()) or list(self.project.config.recipes or ())
                     or [r.name for r in default_recipes()])
            names += [n for n in spec.candidates if n not in names]
        for name in names:
            spec.base_recipe(name)
        return names

    def check_sources(self) -> None:
        """Raise one ``UserInputError`` for the first selected model whose model, data or
        custom-objects file does not exist: a configuration error, found before any
        check runs rather than once per check."""
        for spec in select(self.specs, list(self.settings.models)):
            for key, source in (("model", spec.model), ("data", spec.data),
                                ("custom_objects", spec.custom_objects)):
                if source is not None and not source.is_function and not source.path.exists():
                    raise UserInputError(
                        f"model {spec.name!r}: {key} {source.path}: file not found "
                        f"(set models.{spec.name}.{key} in {self.settings.config})")
            for name, recipe in spec.candidates.items():
                assert recipe.candidate is not None
                problem = candidate.missing_file(spec, name, recipe.candidate)
                if problem:
                    raise UserInputError(f"{problem} (set models.{spec.name}.candidates."
                                         f"{name} in {spec.origin or self.settings.config})")

    def unused_baselines(self) -> list[Path]:
        """Baseline files that no gated case reads (a removed model or recipe, or one
        now declared unsupported). Only meaningful when nothing was deselected."""
        if self.settings.models or self.settings.recipes or self.settings.shard:
            return []
        used = {self.baseline_path(c.model, c.recipe) for c in self.cases() if not c.unsupported}
        return sorted(p for p in self.settings.baselines.glob("*/*.json") if p not in used)

    @property
    def runner(self):
        if self._runner is None:
            from compressgate.pipeline.runner import Runner

            self._runner = Runner(self.specs, ResultCache(None))
        return self._runner

    @property
    def env(self) -> dict[str, str]:
        if self._env is None:
            self._env = baselines.environment(self.runner.backend.versions())
        return self._env

    def prepare(self) -> None:
        """Compute every selected case (and its float reference) once, in parallel."""
        if self._prepared:
            return
        self._prepared = True
        plan = with_reference((c.model, c.recipe) for c in self.cases() if not c.unsupported)
        self.runner.precompute(plan, self.settings.jobs)
        self.runner.measure_files(plan, self.settings.jobs)
        self._measure_accepted()

    def _measure_accepted(self) -> None:
        """Each collected baseline check's accepted file run next to the new one, ``jobs``
        at a time, before anything is timed: like ``measure_files``, nothing in it moves
        with work beside it (outputs on the test split, a fresh process's peak)."""
        if self.settings.jobs < 2:
            return  # measured when its check reads it
        stored = []
        for model, recipe, check in sorted(self.collected):
            try:
                found = self._load(model, recipe) if check == "baseline" else None
            except UserInputError:
                continue  # its own check says what is wrong with the file
            if found is not None and found.metrics.get("converted", True):
                stored.append((model, recipe, found))
        with ThreadPoolExecutor(self.settings.jobs) as pool:
            list(pool.map(lambda case: self.state.side_by_side(*case), stored))

    def row(self, model: str, recipe: str) -> ResultRow:
        """The case's summary row, computed once however many checks read it."""
        return self.state.row(model, recipe)

    def latency(self, model: str, recipe: str, *, fresh: bool = False):
        """The case's latency pairs against the float reference, timed once (``fresh``:
        again)."""
        return self.state.latency(model, recipe, fresh=fresh)

    def invoker(self, model: str, recipe: str):
        """(invoke, extra_info) for pytest-benchmark: one thread, one test row set."""
        from compressgate.measure import litert

        self.prepare()
        outcome = self.runner.outcome(model, recipe)
        if not outcome.converted:
            raise UserInputError(f"{model} x {recipe}: not converted ({outcome.error})")
        row = self.row(model, recipe)
        info = {k: getattr(row, k) for k in ("size_bytes", "gzip_bytes", "accuracy",
                                             "accuracy_drop_pts", "input_dtype", "recipe")}
        return litert.ready_invoke(outcome.tflite, self.runner.sample(model)), info

    def tolerances(self, model: str) -> Tolerances:
        """The model's own tolerances if its config sets them, else the project's."""
        spec = self.specs.get(model)
        return spec.tolerances if spec is not None and spec.tolerances is not None \
            else self.settings.tolerances

    def promise(self, model: str, recipe: str):
        return self.runner.recipe(model, recipe).promise

    def baseline_path(self, model: str, recipe: str) -> Path:
        return baselines.path_for(self.settings.baselines, model, recipe)

    def create_hint(self) -> str:
        return f"{self.settings.command} {baselines.UPDATE_MISSING}"

    # -- checks -------------------------------------------------------------------------

    def run_check(self, model: str, recipe: str, check: str) -> CheckOutcome:
        outcome = self._run_check(model, recipe, check)
        if self.settings.strict and outcome.verdict.skipped:
            verdict = outcome.verdict.with_rows(tuple(
                r.settled(Status.FAIL, f"strict: not judged here: {r.note}")
                if r.status == Status.SKIPPED else r for r in outcome.verdict.rows))
            outcome = CheckOutcome(verdict, outcome.update, outcome.refused)
        return outcome

    def _run_check(self, model: str, recipe: str, check: str) -> CheckOutcome:
        absolute = _ABSOLUTE_CHECKS.get(check)
        if absolute is not None:
            verdict = absolute(self.row(model, recipe), self.promise(model, recipe))
            if check == "accuracy" and verdict.failed and self._diagnoser is not None:
                # Only on failure: the debugger re-calibrates, too slow for every pass.
                verdict = verdict.with_notes(self._diagnoser(self, model, recipe))
            verdict, accept = self._with_accept(model, recipe, verdict)
            return CheckOutcome(verdict, accept=accept)
        if check == "baseline":
            return self._check_baseline(model, recipe)
        if check == "latency":
            return self._check_latency(model, recipe)
        if check == rules.TARGETS_CHECK:
            return self._check_targets(model, recipe)
        if check == device.DEVICE_CHECK:
            return self._check_device(model, recipe)
        raise UserInputError(f"unknown check {check!r} (expected one of "
                             f"{(*rules.CHECKS, rules.TARGETS_CHECK, device.DEVICE_CHECK)})")

    def _with_accept(self, model: str, recipe: str,
                     verdict: Verdict) -> tuple[Verdict, dict[str, Any] | None]:
        return with_accept(model, recipe, verdict, self.specs.get(model))

    def _load(self, model: str, recipe: str) -> baselines.Baseline | None:
        return baselines.load(self.baseline_path(model, recipe), model, recipe)

    @property
    def machine_class(self) -> str:
        return self.env["machine"]

    def build_changes(self, stored: baselines.Baseline) -> tuple[str, ...]:
        """What differs between this run's build and the one that recorded ``stored``:
        library versions, Python, machine class."""
        return stored.build_changes(self.env)

    def reference(self, model: str, recipe: str, stored: baselines.Baseline) -> rules.Reference:
        row = self.row(model, recipe)
        side, why = self.state.side_by_side(model, recipe, stored)
        now = row.inputs or {}
        changed = tuple(sorted(k for k in now if stored.inputs and stored.inputs.get(k) != now[k]))
        overrides = self.specs[model].recipe_overrides.get(recipe, {}) \
            if model in self.specs else {}
        return rules.Reference(
            stored.metrics, stored.machine(self.machine_class), self.machine_class, side,
            absent=why, build_changes=self.build_changes(stored),
            changed_inputs=tuple(f"the {k}" for k in changed),
            nondeterministic=overrides.get("nondeterministic"),
            inputs_recorded=bool(stored.inputs),
            finetuned=self.runner.recipe(model, recipe).needs_finetune)

    def _check_baseline(self, model: str, recipe: str) -> CheckOutcome:
        row = self.row(model, recipe)
        stored = self._load(model, recipe)
        have = stored is not None and (
            not stored.metrics.get("converted", True)
            or all(k in stored.metrics for k in baselines.judged_keys(row)))
        if have:
            assert stored is not None
            reference = self.reference(model, recipe, stored) \
                if stored.metrics.get("converted", True) and row.converted \
                else rules.Reference(stored.metrics)
            verdict = self._annotate(rules.check_baseline(row, reference, self.tolerances(model),
                                                         self.create_hint()), stored)
        else:
            verdict = Verdict(model, recipe, "baseline", (self._missing(model, recipe),))
        metrics = baselines.recorded_metrics(row)
        change = baselines.Change(metrics, records_build=True)
        if row.converted:
            memory = {baselines.MEMORY_FIGURE: row.peak_memory} \
                if row.peak_memory is not None else None
            artifact = self.runner.outcome(model, recipe).tflite \
                if baselines.ARTIFACT_FIGURE in metrics else None
            change = baselines.Change(metrics, row.inputs, memory, artifact,
                                      records_build=True)
            if have and stored is not None and self.settings.update == "missing":
                at_hand = self.state.accepted(model, recipe, stored)[0] is not None
                change = update.only_missing(stored, change, self.machine_class,
                                             artifact_at_hand=at_hand,
                                             other_build=bool(self.build_changes(stored)))
        # A baseline without input digests (from before they were recorded) counts as
        # missing them even when its file is identical and no row says so.
        missing = not have or any(r.missing for r in verdict.rows) or (
            stored is not None and not stored.inputs and bool(row.inputs))
        return self._maybe_update(model, recipe, verdict, change, missing=missing)

    def _check_targets(self, model: str, recipe: str) -> CheckOutcome:
        """Kernel parity and TFLM; the arena figure goes to the baseline's metrics through
        the update flow ("missing" adds it to a record that lacks it, moving nothing)."""
        row = self.row(model, recipe)
        stored = self._load(model, recipe)
        accepted = stored.metrics if stored is not None else {}
        verdict, accept = self._with_accept(model, recipe, targets_rules.check_targets(
            row, self.promise(model, recipe), accepted, self.tolerances(model),
            self.create_hint()))
        figures = row.targets
        change = None
        if figures is not None and figures.tflm_arena_bytes is not None and figures.tflm:
            change = baselines.Change({baselines.ARENA_FIGURE: figures.tflm_arena_bytes,
                                       baselines.TFLM_VERSION: figures.tflm_version})
            if self.settings.update == "missing" and baselines.ARENA_FIGURE in accepted:
                change = None
        outcome = self._maybe_update(model, recipe, verdict, change,
                                     missing=any(r.missing for r in verdict.rows))
        return dataclasses.replace(outcome, accept=accept)

    def latency_against(self, model: str, recipe: str, stored: baselines.Baseline | None, *,
                        fresh: bool = False):
        """(pairs new vs accepted, note, identical): timed only when the accepted file
        differs; ``identical`` when it is the new file itself."""
        return self.state.latency_against(model, recipe, stored, fresh=fresh)

    def _check_latency(self, model: str, recipe: str) -> CheckOutcome:
        stored = self._load(model, recipe)
        recorded = stored.machine(self.machine_class) if stored else {}
        base_ratio = recorded.get("latency_ratio")
        interval = (recorded.get("latency_ratio_low", base_ratio),
                    recorded.get("latency_ratio_high", base_ratio)) if base_ratio else None
        # A record from several processes is judged on several (``envelope``); an older
        # one, from one process, as before.
        spread, tol = tuple(recorded.get(baselines.PROCESS_FIGURE) or ()), self.tolerances(model)

        def judge(pairs, side, note, identical):
            runs = envelope.runs_for(spread, lambda n: self.state.latency_runs(model, recipe, n),
                                     1 + tol.latency_pct / 100, tol.alpha) \
                if spread and pairs is not None else ()
            reference = latency_rules.LatencyReference(
                base_ratio, interval, side, note, identical, self.machine_class, spread)
            return latency_rules.check_latency(model, recipe, pairs, self.promise(model, recipe),
                                               reference, tol, self.create_hint(),
                                               processes=runs)

        pairs = self.latency(model, recipe)
        side, note, identical = self.latency_against(model, recipe, stored)
        verdict = judge(pairs, side, note, identical)
        if verdict.failed and pairs is not None:
            # Confirm on fresh interpreters before declaring a slowdown: a transient
            # shift of the machine must not fail a release; a real one shows twice.
            first, first_side = pairs, side
            pairs = self.latency(model, recipe, fresh=True)
            side, note, identical = self.latency_against(model, recipe, stored, fresh=True)
            verdict = judge(pairs, side, note, identical)
            said = f"first measurement {first.ratio:.3f}, confirmation {pairs.ratio:.3f}"
            if first_side is not None and side is not None:
                said += (f"; vs accepted: first {first_side.ratio:.3f}, "
                         f"confirmation {side.ratio:.3f}")
            verdict = verdict.with_notes(said)
        if pairs is not None and (verdict.failed or pairs.ratio > 1):
            # Why it is slow: the ops XNNPACK did not take, and their share of the time.
            verdict = verdict.with_notes(
                "where the time goes: " + self.runner.where_time_goes(model, recipe))
        if stored is None:
            verdict = verdict.with_rows((*verdict.rows, self._missing(model, recipe)))
        else:
            verdict = self._annotate(verdict, stored)
        change, missing = None, pairs is not None and base_ratio is None
        if pairs is not None and update.wanted(self.settings.update, verdict,
                                                missing=missing):
            # Only a record about to be written spends the fresh processes it is made of.
            runs = self.state.latency_runs(model, recipe, envelope.RECORD_PROCESSES)
            change = baselines.Change(machine=envelope.record(runs))
        outcome = self._maybe_update(model, recipe, verdict, change, missing=missing)
        spec = self.specs.get(model)
        at_threads = self.runner.threads(model, recipe) \
            if spec is not None and len(spec.latency_threads) > 1 else ()
        if not at_threads:
            return outcome
        # After the update: no record is kept per thread count, and no update settles
        # outputs that depend on it.
        return dataclasses.replace(outcome, verdict=outcome.verdict.with_rows(
            outcome.verdict.rows + gate_threads.rows(at_threads)))

    def board_runs(self, model: str, recipe: str) -> tuple:
        """What each of the project's boards measured for the case (``BoardRun``s),
        once per session; () when the file did not convert."""
        return self.state.board_runs(model, recipe, lambda: self._load(model, recipe))

    def _check_device(self, model: str, recipe: str) -> CheckOutcome:
        """The case on each board: outputs against this machine's, memory and latency
        judged in the board's own class; its records go to the baseline's machines."""
        row = self.row(model, recipe)
        if not row.converted:
            return CheckOutcome(rules._not_converted(row, device.DEVICE_CHECK))
        stored = self._load(model, recipe)
        _, side_note, identical = self.state.side_reason(model, recipe, stored)
        runs = self.board_runs(model, recipe)
        verdict = device.check_device(
            model, recipe, runs, self.promise(model, recipe),
            stored.machines if stored is not None else {}, self.tolerances(model),
            self.create_hint(), side_note=side_note, side_identical=identical)
        classes = {run.figures.machine_class: figures for run in runs
                   if (figures := device.record(run)) is not None}
        missing = any(r.missing for r in verdict.rows)
        if self.settings.update == "missing" and stored is not None:
            classes = device.only_missing(classes, stored.machines)
        change = baselines.Change(classes=classes) if classes else None
        if stored is None:
            verdict = verdict.with_rows((*verdict.rows, self._missing(model, recipe)))
            missing = True
        return self._maybe_update(model, recipe, verdict, change, missing=missing)

    def _missing(self, model: str, recipe: str) -> Row:
        """The row of a check whose baseline file does not exist yet."""
        return Row("baseline", None, str(self.baseline_path(model, recipe)), "-", Status.FAIL,
                   f"missing; create it with: {self.create_hint()}", missing=True)

    def _annotate(self, verdict: Verdict, stored: baselines.Baseline) -> Verdict:
        moved = [c for c in self.build_changes(stored) if not c.startswith("machine class")]
        if not moved:
            return verdict
        note = "baseline recorded with other versions: " + ", ".join(moved)
        return verdict.with_notes(note)

    def _maybe_update(self, model: str, recipe: str, verdict: Verdict,
                      change: baselines.Change | None, *, missing: bool) -> CheckOutcome:
        mode = self.settings.update
        if not update.wanted(mode, verdict, missing=missing) or change is None \
                or change == baselines.Change():
            return CheckOutcome(verdict)
        row = self.row(model, recipe)
        refusals = rules.absolute_failures(row, self.promise(model, recipe))
        if refusals and not self.settings.force:
            return CheckOutcome(verdict, refused="; ".join(refusals)
                           + " (pass --compressgate-force to record it anyway)")
        old, new = baselines.update(self.baseline_path(model, recipe), model, recipe,
                                    change, self.env)
        self.state.forget(model, recipe)  # the accepted file may have changed
        reason = "created" if old is None else ("updated: was failing" if verdict.failed
                                                else "updated")
        diff = baselines.diff_rows(old, new)
        return CheckOutcome(update.settled(verdict, mode),
                            Update(str(new.path), reason, diff) if diff else None)
