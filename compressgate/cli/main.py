"""The ``compressgate`` command line: one parser, one subcommand per task.

``run``, ``init``, ``diagnose``, ``fixtures build``, ``reproducibility``, ``merge``,
``cache-key`` and ``legacy export``; ``python -m compressgate ...`` is the same command.
Each subcommand's work is in ``cli.commands``; a ``UserInputError`` becomes one line and
exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compressgate.errors import UserInputError
from compressgate.pipeline.cache import CACHE_ENV
from compressgate.project.config import names

_PROJECT_HELP = ("project config file, or a directory holding one (default: "
                 "compressgate.toml or pyproject.toml here)")


def _project(parser: argparse.ArgumentParser) -> None:
    """``--config``: the project to read (every subcommand but ``init``, which writes one)."""
    parser.add_argument("--config", type=Path, default=None, help=_PROJECT_HELP)


def _names(parser: argparse.ArgumentParser, what: str, default: str) -> None:
    parser.add_argument(f"--{what}", type=names, default=None,
                        help=f"comma-separated {what[:-1]} names (default: {default})")


def _cases(parser: argparse.ArgumentParser,
           recipes: str = "each model's own list, else all") -> None:
    """The project and which of its models x recipes to take."""
    _project(parser)
    _names(parser, "models", "all")
    _names(parser, "recipes", recipes)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="compressgate", description="Compress Keras models, measure the .tflite files "
        "through LiteRT, and explain what moved.")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="compress every model with every recipe and measure it")
    _cases(run)
    run.add_argument("--out", type=Path, default=None,
                     help="report directory (default: the config's reports)")
    run.add_argument("--no-cache", action="store_true",
                     help=f"recompute everything (cache dir: ${CACHE_ENV})")
    run.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    run.add_argument("--jobs", type=int, default=None,
                     help="worker processes for conversions (default: $COMPRESSGATE_JOBS, "
                          "else the config's jobs, else one per core)")
    run.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                     help="write fine-tune logs (QAT, pruning summaries) under DIR/<model>-"
                          "<recipe>; cached results are not fine-tuned (see --no-cache)")

    diag = sub.add_parser("diagnose", help="why a recipe loses accuracy: per-layer error")
    diag.add_argument("model", help="model name from the project config")
    diag.add_argument("recipe", help="recipe name")
    _project(diag)
    diag.add_argument("--out", type=Path, default=Path("reports"),
                      help="report directory (writes diagnosis/<model>-<recipe>.*)")

    init = sub.add_parser("init", help="write a starter config for a model")
    init.add_argument("model", type=Path, help=".keras, .h5 or SavedModel directory")
    init.add_argument("--data", type=Path, default=None,
                      help=".npz with x_/y_ train, calib, test (checked against the model)")
    init.add_argument("--name", default=None, help="model name (default: the file's stem)")
    _names(init, "recipes", "all that apply")
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
    _names(build, "models", "all")

    repro = sub.add_parser(
        "reproducibility", help="convert afresh (no result cache) and print each file's "
                                "sha256 as JSON")
    _cases(repro, "all")
    repro.add_argument("--baselines", type=Path, default=None,
                       help="also compare with the sha256 recorded there; exit 1 on a change")

    cache_key = sub.add_parser(
        "cache-key", help="print one digest of the result cache's key material for every "
                          "model x recipe and this machine class (a CI cache key)")
    _cases(cache_key)

    merge = sub.add_parser(
        "merge", help="combine the reports of a sharded gate (--compressgate-shard K/N) "
                      "into one; exit 1 if a check failed or the shards do not add up")
    merge.add_argument("shards", type=Path, nargs="+", metavar="DIR",
                       help="each shard's reports directory (summary.json, checks.json)")
    _project(merge)
    merge.add_argument("--out", type=Path, default=None,
                       help="merged report directory (default: the config's reports)")
    merge.add_argument("--baselines", type=Path, default=None,
                       help="baseline directory for the change table (default: the "
                            "config's baselines)")

    legacy = sub.add_parser("legacy", help="the oldest-runtime gate's TensorFlow side")
    lsub = legacy.add_subparsers(dest="legacy_command", required=True)
    export = lsub.add_parser("export", help="write each converted model and LiteRT's outputs")
    export.add_argument("out", type=Path)
    _project(export)
    export.add_argument("--jobs", type=int, default=1)
    return top


def main(argv: list[str] | None = None) -> int:
    from compressgate.cli import commands

    args = parser().parse_args(argv)
    command = {"run": commands.run, "init": commands.init, "diagnose": commands.diagnose,
               "fixtures": commands.fixtures_build, "reproducibility": commands.reproducibility,
               "merge": commands.merge, "cache-key": commands.cache_key,
               "legacy": commands.legacy_export}[args.command]
    try:
        return command(args)
    except UserInputError as exc:
        print(f"compressgate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
