"""The package layout's rules: packages ranked along the data flow (import-linter's
contracts in pyproject.toml), only the TensorFlow backend's environment imports
TensorFlow; the typed check record and the one list-of-names reader."""

import json
from pathlib import Path

import pytest

from compressgate.cli.main import parser
from compressgate.gate.records import CheckRecord, Row, Status, Update, Verdict
from compressgate.pipeline.record import LatencyFigures, ResultRow
from compressgate.project.config import names

ROOT = Path(__file__).resolve().parents[2]


def lint(config: Path) -> bool:
    """Whether the import-linter contracts in ``config`` are kept (no cache: a fresh graph)."""
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()  # what the lint-imports command does first
    return lint_imports(config_filename=str(config), cache_dir=None, no_logo=True)


def test_packages_import_only_those_ranked_below_them_and_only_env_imports_tensorflow():
    assert lint(ROOT / "pyproject.toml")


def test_the_ranking_catches_an_upward_import_even_a_lazy_one(tmp_path, monkeypatch):
    package = tmp_path / "ranked"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("import ranked.low\n")
    (package / "low.py").write_text("def f():\n    from ranked import high\n")
    config = tmp_path / ".importlinter"
    config.write_text("[importlinter]\nroot_package = ranked\n\n"
                      "[importlinter:contract:ranking]\nname = ranking\ntype = layers\n"
                      "containers = ranked\nlayers =\n    high\n    low\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not lint(config)
    (package / "low.py").write_text("")
    assert lint(config)


def verdict():
    return Verdict("m", "r", "baseline", (
        Row("accuracy", 0.9, 0.95, "-0.5 pts", Status.REGRESSION, "2 rows", headroom=-1.0),
        Row("latency_ratio", 1.1, None, "-", Status.SKIPPED, "no record"),
        Row("size_bytes", 100, 120, "+1 %", Status.IMPROVED, headroom=2.0)))


def test_a_check_record_survives_the_json_trip_to_the_controller():
    record = CheckRecord.of(verdict(), message="text", refused=None,
                            update=Update("b/m/r.json", "updated", [("a", "1", "2", "+1 %")]),
                            row=ResultRow("m", "r", converted=False),
                            latency=LatencyFigures(0.5, 0.45, 0.55, 1.2, 2.4, 42, 0.3))
    back = CheckRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back == record
    assert back.latency == LatencyFigures(0.5, 0.45, 0.55, 1.2, 2.4, 42, 0.3)
    assert CheckRecord.from_dict(CheckRecord.of(verdict(), message="").to_dict()).latency \
        is None
    assert (back.failed, back.regressions, back.stale) == (True, ["accuracy"], ["size_bytes"])
    assert back.skipped == ["latency_ratio: no record"]
    assert back.headroom == {"accuracy": -1.0, "size_bytes": 2.0}


def test_an_error_record_fails_with_its_message():
    record = CheckRecord.error("m", "r", "conversion", "LiteRT cannot load it")
    assert CheckRecord.from_dict(record.to_dict()) == record
    assert record.failed and record.row is None and record.update is None


def test_status_is_an_enum_that_reads_as_its_word():
    row = Row("x", 1, 1, "-", "pass")
    assert row.status is Status.PASS and f"{row.status}" == "pass"
    assert json.dumps(row.status) == '"pass"'
    assert [s for s in Status if s.failed] == [Status.FAIL, Status.REGRESSION]
    with pytest.raises(ValueError):
        Row("x", 1, 1, "-", "passed")


@pytest.mark.parametrize(("given", "read"), [
    (None, None), ("a,b", ["a", "b"]), ("a, b  c", ["a", "b", "c"]), ("", []),
    ([" a ", "b", ""], ["a", "b"]), ([1], [1])])
def test_one_reader_for_lists_of_names(given, read):
    assert names(given) == read


@pytest.mark.parametrize("argv", [
    ["run", "--config", "c.toml", "--models", "a,b", "--recipes", "x y"],
    ["diagnose", "m", "r", "--config", "c.toml"],
    ["init", "m.keras", "--recipes", "x,y"],
    ["fixtures", "build", "--models", "a"],
    ["reproducibility", "--config", "c.toml", "--models", "a", "--baselines", "b"],
    ["legacy", "export", "out", "--config", "c.toml", "--jobs", "2"],
])
def test_one_parser_for_every_subcommand(argv):
    args = parser().parse_args(argv)
    assert args.command == argv[0]
    if "--models" in argv:
        assert args.models == names(argv[argv.index("--models") + 1])


def test_test_modules_have_unique_basenames():
    """The test directories are not packages (rootdir imports): two modules of one
    basename stop the whole collection, which a run of one directory never shows."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, clashes
