"""``compressgate run``, ``compressgate init`` and ``compressgate fixtures build``."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from compressgate.errors import UserInputError
from compressgate.pipeline.cache import CACHE_ENV, ResultCache


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", " ").split() if v.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compressgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="compress every model with every recipe and measure it")
    run.add_argument("--models", type=_csv, default=None, help="comma-separated model names")
    run.add_argument("--recipes", type=_csv, default=None, help="comma-separated recipe names")
    run.add_argument("--config", type=Path, default=None,
                     help="project config file, or a directory holding one (default: "
                          "compressgate.toml or pyproject.toml here)")
    run.add_argument("--out", type=Path, default=None,
                     help="report directory (default: the config's reports)")
    run.add_argument("--no-cache", action="store_true",
                     help=f"recompute everything (cache dir: ${CACHE_ENV})")
    run.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    run.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="worker processes for conversions (default: all cores)")
    run.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                     help="write fine-tune logs (QAT, pruning summaries) under DIR/<model>-"
                          "<recipe>; cached results are not fine-tuned (see --no-cache)")

    diag = sub.add_parser("diagnose", help="why a recipe loses accuracy: per-layer error")
    diag.add_argument("model", help="model name from the project config")
    diag.add_argument("recipe", help="recipe name")
    diag.add_argument("--config", type=Path, default=None,
                      help="project config file, or a directory holding one (default: "
                           "compressgate.toml or pyproject.toml here)")
    diag.add_argument("--out", type=Path, default=Path("reports"),
                      help="report directory (writes diagnosis/<model>-<recipe>.*)")

    init = sub.add_parser("init", help="write a starter config for a model")
    init.add_argument("model", type=Path, help=".keras, .h5 or SavedModel directory")
    init.add_argument("--data", type=Path, default=None,
                      help=".npz with x_/y_ train, calib, test (checked against the model)")
    init.add_argument("--name", default=None, help="model name (default: the file's stem)")
    init.add_argument("--recipes", type=_csv, default=None,
                      help="comma-separated recipes (default: all that apply)")
    init.add_argument("--config", type=Path, default=Path("compressgate.toml"),
                      help="config file to write (default: compressgate.toml)")
    init.add_argument("--tests", type=Path, default=Path("tests/test_compressgate.py"),
                      help="gate test file to write when absent")
    init.add_argument("--custom-objects", default=None, metavar="MODULE:FUNCTION",
                      help="returns {name: class} for a model with custom layers")
    init.add_argument("--force", action="store_true", help="overwrite an existing config")

    fixtures = sub.add_parser("fixtures", help="bundled fixture models")
    fsub = fixtures.add_subparsers(dest="fixtures_command", required=True)
    build = fsub.add_parser("build", help="retrain the fixtures deterministically")
    build.add_argument("--out", type=Path, default=Path("fixtures"))
    build.add_argument("--models", type=_csv, default=None)
    return parser


def _log(line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {line}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from compressgate.gate.session import GateSession, Settings
    from compressgate.pipeline.runner import Runner
    from compressgate.report import markdown, view
    from compressgate.report.summary import write_summary

    gate = GateSession(Settings(config=args.config, models=tuple(args.models or ()),
                                recipes=tuple(args.recipes or ())))
    if not gate.specs:
        raise UserInputError(
            f"{gate.project.path or Path.cwd()}: no models configured (run `compressgate "
            "init MODEL` to write a config, or pass --config)")
    cases = [(c.model, c.recipe) for c in gate.cases() if not c.unsupported]
    out = args.out or gate.project.reports
    if args.tensorboard is not None:
        from compressgate.backends.tf import use_tensorboard

        use_tensorboard(args.tensorboard)  # an environment variable: workers inherit it
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compressgate-") as scratch:
        # --no-cache: a fresh cache for this run only, through which the workers report.
        cache = ResultCache(Path(scratch)) if args.no_cache else ResultCache(None)
        runner = Runner(gate.specs, cache, log=_log)
        rows = runner.run(cases, with_latency=not args.no_latency, jobs=args.jobs)
    meta = {
        "source": "compressgate run",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "versions": {**runner.backend.versions(), "python": platform.python_version()},
        "machine": platform.machine(),
    }
    paths = write_summary(out, rows, meta)
    print(markdown.table(view.results_frame(rows)))
    failed = [r for r in rows if not r["converted"]]
    if args.tensorboard is not None:
        cached = [f"{r['model']} x {r['recipe']}" for r in rows if r.get("cached")
                  and r.get("finetune_seconds")]
        if cached:
            _log(f"tensorboard: no logs for cached results ({', '.join(cached)}); "
                 "pass --no-cache to fine-tune them again")
    _log(f"{len(rows)} results, {len(failed)} not converted, in {meta['wall_seconds']} s: "
         + ", ".join(str(p) for p in paths))
    return 0


def _init(args: argparse.Namespace) -> int:
    from compressgate.project.init import write

    for path in write(args.model, data=args.data, name=args.name, config_path=args.config,
                      recipes=args.recipes, tests=args.tests, force=args.force,
                      custom_objects=args.custom_objects):
        _log(f"wrote {path}")
    _log("next: compressgate run; then pytest --compressgate-update=missing to record "
         "baselines; commit them")
    return 0


def _fixtures_build(args: argparse.Namespace) -> int:
    from compressgate.backends.tf.fixtures import build_all

    path = build_all(args.out, args.models, log=_log)
    _log(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "init":
            return _init(args)
        if args.command == "diagnose":
            from compressgate.diagnosis.collect import main as diagnose_main

            return diagnose_main(args, _log)
        return _fixtures_build(args)
    except UserInputError as exc:
        print(f"compressgate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
