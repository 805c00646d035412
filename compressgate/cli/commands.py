"""What each ``compressgate`` subcommand does, given its parsed arguments (``cli.main``).

Every command imports what it needs when it runs: ``compressgate --help`` and a bad
argument never load TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from compressgate.errors import UserInputError
from compressgate.gate.baselines import UPDATE_MISSING


def log(line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """``compressgate run``: every model x recipe measured, ``summary.*`` written."""
    from compressgate.gate.session import GateSession, Settings
    from compressgate.pipeline.cache import ResultCache
    from compressgate.pipeline.runner import Runner
    from compressgate.report import markdown, view
    from compressgate.report.gate_run import run_facts
    from compressgate.report.summary import write_summary
    from compressgate.report.view import ReportRow

    gate = GateSession(Settings(config=args.config, models=tuple(args.models or ()),
                                recipes=tuple(args.recipes or ())))
    if not gate.specs:
        raise UserInputError(
            f"{gate.project.path or Path.cwd()}: no models configured (run `compressgate "
            "init MODEL` to write a config, or pass --config)")
    jobs = args.jobs or gate.project.jobs  # a bad $COMPRESSGATE_JOBS stops before any work
    cases = [(c.model, c.recipe) for c in gate.cases() if not c.unsupported]
    for spec in gate.specs.values():
        if spec.keras3_blocker:  # read from the file, without TensorFlow
            log(f"model {spec.name}: Keras 3 model: {spec.keras3_blocker}; the converter "
                "recipes convert the Keras 3 model itself")
    for case in gate.cases():
        if case.unsupported:  # pytest gates it as a strict xfail with this reason
            log(f"left out {case.model} x {case.recipe}: {case.unsupported}")
    out = args.out or gate.project.reports
    if args.tensorboard is not None:
        from compressgate.backends.tf import use_tensorboard

        use_tensorboard(args.tensorboard)  # an environment variable: workers inherit it
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compressgate-") as scratch:
        # --no-cache: a fresh cache for this run only, through which the workers report.
        cache = ResultCache(Path(scratch)) if args.no_cache else ResultCache(None)
        runner = Runner(gate.specs, cache, log=log)
        results = runner.run(cases, with_latency=not args.no_latency, jobs=jobs)
    meta = {
        "source": "compressgate run",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": runner.phase_seconds,
        **run_facts(),
        "versions": {**runner.backend.versions(), "python": platform.python_version()},
    }
    rows = [ReportRow(r) for r in results]
    paths = write_summary(out, rows, meta)
    print(markdown.table(view.results_frame(rows)))
    failed = [r for r in results if not r.converted]
    if args.tensorboard is not None:
        cached = [f"{r.model} x {r.recipe}" for r in results if r.cached
                  and r.finetune_seconds]
        if cached:
            log(f"tensorboard: no logs for cached results ({', '.join(cached)}); "
                "pass --no-cache to fine-tune them again")
    log(f"{len(rows)} results, {len(failed)} not converted, in {meta['wall_seconds']} s: "
        + ", ".join(str(p) for p in paths))
    return 0


def init(args: argparse.Namespace) -> int:
    """``compressgate init MODEL``: a starter config (and gate test file)."""
    from compressgate.workflows.init import write

    written = write(args.model, data=args.data, name=args.name, config_path=args.config,
                    recipes=args.recipes, tests=args.tests, force=args.force,
                    custom_objects=args.custom_objects)
    for path in written.paths:
        log(f"wrote {path}")
    if written.ignored:
        log(f".gitignore: added {', '.join(written.ignored)}")
    for line in written.said:
        log(line)
    for reason in written.left_out:
        log(f"left out {reason}")
    log(f"next: compressgate run; then pytest {UPDATE_MISSING} to record "
        "baselines; commit them")
    return 0


def diagnose(args: argparse.Namespace) -> int:
    """``compressgate diagnose MODEL RECIPE``: write the report and print its summary."""
    from compressgate.diagnosis.collect import collect
    from compressgate.diagnosis.report import markdown, write
    from compressgate.pipeline.cache import ResultCache
    from compressgate.pipeline.runner import Runner
    from compressgate.project import config
    from compressgate.project.models import select

    specs = config.load(args.config).specs
    select(specs, [args.model])[0].base_recipe(args.recipe)
    runner = Runner(specs, ResultCache(None), log=log)
    diag = collect(runner, args.model, args.recipe)
    paths = write(diag, args.out / "diagnosis")
    print(markdown(diag))
    log("wrote " + ", ".join(str(p) for p in paths))
    return 1 if diag.problems and not diag.layers and not diag.sparsity else 0


def fixtures_build(args: argparse.Namespace) -> int:
    """``compressgate fixtures build``: retrain the bundled fixtures."""
    from compressgate.backends.tf.fixtures import build_all

    path = build_all(args.out, args.models, log=log)
    log(f"wrote {path}")
    return 0


def reproducibility(args: argparse.Namespace) -> int:
    """``compressgate reproducibility``: convert afresh (no result cache), print each
    file's sha256 as JSON; with ``--baselines``, compare and exit 1 on a change."""
    from compressgate.recipes import default_recipes
    from compressgate.workflows.reproducibility import compare_with_baselines, fresh_sha256

    recipes = args.recipes or [r.name for r in default_recipes()]
    fresh = fresh_sha256(args.config, args.models or [], recipes)
    print(json.dumps(fresh, sort_keys=True))
    return compare_with_baselines(fresh, args.baselines) if args.baselines else 0


def merge(args: argparse.Namespace) -> int:
    """``compressgate merge DIR...``: the shards' reports as one; 1 if a check failed or
    the shards do not add up (one line per problem on stderr)."""
    from compressgate.gate.session import Settings
    from compressgate.project import config
    from compressgate.report.gate_run import summary_lines
    from compressgate.report.merge import merge as merge_reports

    project = config.load(args.config)
    settings = Settings.from_project(project, baselines=args.baselines or project.baselines,
                                     reports=args.out or project.reports)
    merged = merge_reports(args.shards, settings)
    for line in summary_lines(merged.records, merged.written):
        print(line)
    for problem in merged.problems:
        print(f"compressgate merge: {problem}", file=sys.stderr)
    return 0 if merged.ok else 1


def cache_key(args: argparse.Namespace) -> int:
    """``compressgate cache-key``: a CI cache key that changes exactly when a result
    could: the cache keys of every case and its float reference (library versions, Python,
    compressgate, model and data digests, recipe settings) and the machine class (a
    fine-tuned model is byte-identical only within one)."""
    import hashlib

    from compressgate.gate.session import GateSession, Settings
    from compressgate.measure.machine import machine_class, this_machine
    from compressgate.pipeline.cache import ResultCache
    from compressgate.pipeline.runner import Runner
    from compressgate.recipes import with_reference

    gate = GateSession(Settings(config=args.config, models=tuple(args.models or ()),
                                recipes=tuple(args.recipes or ())))
    runner = Runner(gate.specs, ResultCache(None, enabled=False))
    cases = with_reference((c.model, c.recipe) for c in gate.all_cases() if not c.unsupported)
    keys = sorted(runner.cache_key(m, runner.recipe(m, r)) for m, r in cases)
    text = "\n".join([machine_class(this_machine()), *keys])
    print(hashlib.sha256(text.encode()).hexdigest()[:32])
    return 0


def legacy_export(args: argparse.Namespace) -> int:
    """``compressgate legacy export DIR``: each converted model and LiteRT's outputs, for
    the oldest-runtime gate (``tests/legacy``)."""
    from compressgate.workflows.legacy import export

    index = export(args.out, args.config, jobs=args.jobs)
    print(f"{args.out}: {sum(e['converted'] for e in index['entries'])} models exported")
    return 0
