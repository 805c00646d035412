"""pytest plugin: the compressgate release gate.

Hooks are thin: settings come from the command line, the project config
(``compressgate.toml`` or ``[tool.compressgate]`` in ``pyproject.toml``, see ``project.config``)
or ``compressgate_*`` ini keys; a ``GateSession`` does the work.
Any test that takes the ``compressgate_check`` fixture is parametrized over
model x recipe x check (ids like ``digits_cnn-ptq_int8-accuracy``); one that takes
``compressgate_case`` over model x recipe (for pytest-benchmark).

Verdicts travel to the controller in ``report.user_properties``, so the closing
summary and the reports are the same under pytest-xdist as in a serial run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NoReturn

import pytest

from compressgate.diagnosis.report import diagnose_note
from compressgate.errors import BaselineError, UserInputError
from compressgate.gate import shards
from compressgate.gate.device import DEVICE_CHECK
from compressgate.gate.records import CheckRecord
from compressgate.gate.session import Case, GateSession, Settings
from compressgate.gate.update import UPDATE_MODES
from compressgate.measure.quiet import QuietPhase
from compressgate.pipeline.record import LatencyFigures

_SESSION = pytest.StashKey[GateSession]()
_SETTINGS = pytest.StashKey[Settings]()
_QUIET = pytest.StashKey[QuietPhase]()
# The worker input key of the quiet phase's directory (see measure.quiet).
_QUIET_INPUT = "compressgate_quiet"
_PROPERTY = "compressgate"
# What a gate item checks, [model, recipe, check]: reports carry it even when the check
# failed before it could record itself.
_CASE_PROPERTY = "compressgate-case"
LATENCY_GROUP = "compressgate-latency"

_OPTIONS = {  # option -> (ini key, help)
    "config": ("compressgate_config", "project config: a compressgate.toml / pyproject.toml / "
               "JSON file, or a directory holding one (default: the rootdir's)"),
    "baselines": ("compressgate_baselines", "baseline directory (default: baselines)"),
    "reports": ("compressgate_reports", "where the gate writes reports (default: reports)"),
    "models": ("compressgate_models", "comma-separated models to gate (default: all)"),
    "recipes": ("compressgate_recipes", "comma-separated recipes to gate (default: each "
                "model's own list, else all)"),
    "shard": ("compressgate_shard", "gate only shard K of N (K/N, e.g. 1/2; also "
              f"${shards.SHARD_ENV}); `compressgate merge` combines the shards' reports"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("compressgate", "compressgate release gate")
    for name, (ini, text) in _OPTIONS.items():
        group.addoption(f"--compressgate-{name}", dest=f"compressgate_{name}", default=None,
                        help=text)
        parser.addini(ini, text, default=None)
    group.addoption("--compressgate-no-latency", action="store_true", default=None,
                    dest="compressgate_no_latency", help="skip the latency checks")
    parser.addini("compressgate_latency", "run the latency checks", type="bool", default=True)
    group.addoption("--compressgate-update", choices=UPDATE_MODES[1:], default=None,
                    dest="compressgate_update",
                    help="write baselines: all, only failed ones, or only missing ones")
    group.addoption("--compressgate-force", action="store_true", default=False,
                    dest="compressgate_force",
                    help="record baselines even when the absolute checks fail")
    group.addoption("--compressgate-strict", action="store_true", default=None,
                    dest="compressgate_strict",
                    help="fail a comparison this machine cannot make (no record for its "
                         "machine class, no accepted artifact) instead of listing it")
    group.addoption("--compressgate-tensorboard", default=None, metavar="DIR",
                    dest="compressgate_tensorboard",
                    help="write fine-tune logs (QAT, pruning summaries) under DIR/<model>-"
                         "<recipe>; cached results are not fine-tuned")


def settings_from_config(config: pytest.Config) -> Settings:
    """Command line, then the project config (``compressgate.toml`` or
    ``[tool.compressgate]``), then ini keys, then defaults."""
    from compressgate.project import config as project_config

    root = Path(config.rootpath)

    def option(name: str) -> Any:
        cli = config.getoption(f"compressgate_{name}")
        return cli if cli is not None else config.getini(_OPTIONS[name][0])

    where = option("config")
    try:
        project = project_config.load(root / where if where else None, directory=root)
    except UserInputError as exc:
        raise pytest.UsageError(f"compressgate: {exc}") from None
    settings = project.config

    def path(name: str) -> Path:
        given = config.getoption(f"compressgate_{name}")
        return root / given if given else project.root / getattr(settings, name)

    try:
        shard = shards.parse(option("shard")) if option("shard") else shards.from_env()
        # Under xdist the workers already share the cores; each computes lazily.
        jobs = 1 if hasattr(config, "workerinput") else project.jobs
    except UserInputError as exc:
        raise pytest.UsageError(f"compressgate: {exc}") from None
    latency = settings.latency and config.getini("compressgate_latency") \
        and not config.getoption("compressgate_no_latency")
    return Settings.from_project(
        project, baselines=path("baselines"), config=project.path or root,
        reports=path("reports"), models=tuple(project_config.names(option("models")) or ()),
        recipes=tuple(project_config.names(option("recipes")) or ()), latency=bool(latency),
        update=config.getoption("compressgate_update") or "none",
        force=config.getoption("compressgate_force"),
        strict=bool(config.getoption("compressgate_strict") or settings.strict),
        shard=shard,
        jobs=jobs,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "latency: a compressgate latency check (deselect with "
                                       "-m 'not latency')")
    config.addinivalue_line("markers", "compressgate: a compressgate gate check")
    # Latency checks carry it; without pytest-xdist nobody else registers it.
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group's "
                                       "items in one worker")
    config.stash[_SETTINGS] = settings_from_config(config)  # bad settings: a usage error
    _session(config)  # so is a missing model or data file: once, before collection
    tensorboard = config.getoption("compressgate_tensorboard", None)
    if tensorboard:
        from compressgate.backends.tf import use_tensorboard

        try:  # an environment variable: this process and the workers it spawns read it
            use_tensorboard(Path(tensorboard))
        except UserInputError as exc:
            raise pytest.UsageError(f"compressgate: {exc}") from None
    config.pluginmanager.register(_Collector(config), "compressgate-collector")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(_QUIET_INPUT):
        config.stash[_QUIET] = QuietPhase(Path(workerinput[_QUIET_INPUT]))
    elif workerinput is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_Workers(), "compressgate-workers")
    # Latency checks carry an xdist_group; xdist honours groups under --dist loadgroup,
    # which distributes everything else exactly like the default "load".
    if getattr(config.option, "dist", None) == "load":
        config.option.dist = "loadgroup"


class _Workers:
    """On an xdist controller: hands every worker the run's quiet phase, so latency is
    timed while the gate's other workers wait (see ``measure.quiet``)."""

    def __init__(self) -> None:
        self.directory: Path | None = None

    def pytest_configure_node(self, node) -> None:
        if self.directory is None:
            import tempfile

            self.directory = Path(tempfile.mkdtemp(prefix="compressgate-quiet-"))
        node.workerinput[_QUIET_INPUT] = str(self.directory)

    def pytest_unconfigure(self) -> None:
        if self.directory is not None:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)


def _session(config: pytest.Config) -> GateSession:
    if _SESSION not in config.stash:
        try:
            session = GateSession(config.stash[_SETTINGS], diagnoser=diagnose_note)
            session.check_sources()
            config.stash[_SESSION] = session
        except UserInputError as exc:
            raise pytest.UsageError(f"compressgate: {exc}") from None
    return config.stash[_SESSION]


def _check_params(session: GateSession) -> list:
    params = []
    for case in session.cases():
        for check in case.checks:
            if check == "latency" and not session.settings.latency:
                continue
            marks = [pytest.mark.compressgate]
            if case.unsupported:
                marks.append(pytest.mark.xfail(reason=case.unsupported, strict=True))
            if check == "latency":
                marks += [pytest.mark.latency, pytest.mark.xdist_group(LATENCY_GROUP)]
            params.append(pytest.param((case, check), marks=marks,
                                       id=f"{case.model}-{case.recipe}-{check}"))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "compressgate_check" in metafunc.fixturenames:
        params = _check_params(_session(metafunc.config))
        metafunc.parametrize("_compressgate_param", params, indirect=True)
    elif "compressgate_case" in metafunc.fixturenames:
        cases = [c for c in _session(metafunc.config).cases() if not c.unsupported]
        metafunc.parametrize("compressgate_case", cases,
                             ids=[f"{c.model}-{c.recipe}" for c in cases])


@pytest.fixture
def _compressgate_param(request: pytest.FixtureRequest):
    return request.param


class Check:
    """One gate check of one model x recipe; call it to run and assert."""

    def __init__(self, session: GateSession, case: Case, check: str, node: pytest.Item):
        self.session, self.case, self.check, self._node = session, case, check, node
        self.model, self.recipe = case.model, case.recipe

    def __call__(self) -> None:
        problem, of_this_case = None, False
        quiet = self._node.config.stash.get(_QUIET, None)
        try:
            if quiet is None:
                outcome = self.session.run_check(self.model, self.recipe, self.check)
            else:
                with quiet.timing() if self.check == "latency" else quiet.working():
                    outcome = self.session.run_check(self.model, self.recipe, self.check)
        except BaselineError as exc:  # one case's file: the other cases are still judged
            problem, of_this_case = str(exc), True
        except UserInputError as exc:
            problem = str(exc)
        except Exception as exc:  # a bug still counts as a failed check in every report
            _record(self._node, CheckRecord.error(self.model, self.recipe, self.check,
                                                  f"{type(exc).__name__}: {exc}"))
            raise
        if problem is not None:  # outside the except: no "during handling" chain
            self._stop(problem, whole_run=not of_this_case)
        extra: dict[str, Any] = {}
        if self.check == "conversion":
            extra["row"] = self.session.row(self.model, self.recipe)
        if self.check == "latency":
            pairs = self.session.latency(self.model, self.recipe)
            extra["latency"] = LatencyFigures.of(pairs)
        if self.check == DEVICE_CHECK:
            extra["boards"] = tuple(run.figures for run in
                                    self.session.board_runs(self.model, self.recipe))
        _record(self._node, outcome.record(**extra))
        if outcome.failed:
            pytest.fail(outcome.message(), pytrace=False)


    def _stop(self, problem: str, *, whole_run: bool) -> NoReturn:
        """The user's input is wrong. A model, data or config problem: every other check
        would say the same, so stop once with one line, like any other usage error (under
        xdist a worker cannot stop the run: the check fails with that line). A problem
        of this case only (its baseline file): this check fails with that line."""
        _record(self._node, CheckRecord.error(self.model, self.recipe, self.check, problem))
        if whole_run and not hasattr(self._node.config, "workerinput"):
            pytest.exit(f"compressgate: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)
        pytest.fail(f"compressgate: {problem}", pytrace=False)


def _record(node: pytest.Item, record: CheckRecord) -> None:
    # JSON: pytest-xdist sends user_properties from its workers as plain data.
    node.user_properties.append((_PROPERTY, json.dumps(record.to_dict(), default=str)))


@pytest.fixture
def compressgate_check(request: pytest.FixtureRequest, _compressgate_param) -> Check:
    """The gate check this test item stands for (see the module docstring)."""
    case, check = _compressgate_param
    return Check(_session(request.config), case, check, request.node)


@pytest.fixture(scope="session")
def compressgate_session(request: pytest.FixtureRequest) -> GateSession:
    return _session(request.config)


def _gate_items(items: list[pytest.Item]):
    """(case, check, item) of every gate check among ``items``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("_compressgate_param") if callspec else None
        if isinstance(param, tuple):  # not an empty parameter set's NOTSET
            yield (*param, item)


def _unrecorded(report: pytest.TestReport) -> CheckRecord:
    """An error record for a gate item that failed without a verdict."""
    model, recipe, check = dict(report.user_properties).get(_CASE_PROPERTY, ("?", "?", "?"))
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else \
        (str(report.longrepr).strip().splitlines() or ["no details"])[-1]
    return CheckRecord.error(model, recipe, check, f"{report.when}: {message}")


class _Collector:
    """Gathers the records of every gate item (also from xdist workers) and, on the
    controller, prints the closing summary and writes the reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[CheckRecord] = []
        self.written: list[Path] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for case, check, item in _gate_items(items):
            item.user_properties.append((_CASE_PROPERTY, [case.model, case.recipe, check]))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # After -k/-m deselection: what the gate session may measure ahead.
        if _SESSION in self.config.stash:
            self.config.stash[_SESSION].collected = frozenset(
                (case.model, case.recipe, check) for case, check, _ in _gate_items(session.items))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        recorded = False
        for name, value in report.user_properties:
            if name == _PROPERTY and report.when == "call":
                recorded = True
                # A declared-unsupported recipe failing is expected (strict xfail).
                self.records.append(dataclasses.replace(
                    CheckRecord.from_dict(json.loads(value)),
                    expected=hasattr(report, "wasxfail")))
        if report.failed and not recorded and report.when != "teardown" \
                and "compressgate" in report.keywords:
            # Failed before the check could record itself (a fixture, a crash): the
            # plugin's count must still agree with pytest's.
            self.records.append(_unrecorded(report))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # A shard writes its reports even when it owns no case (more shards than cases),
        # so that the merge sees every shard.
        sharded = self.config.stash[_SETTINGS].shard is not None
        if (self.records or sharded) and not hasattr(self.config, "workerinput"):
            from compressgate.report.gate_run import shard_facts, write_reports

            gate = _session(self.config)
            cases = [(c.model, c.recipe) for c in gate.cases()]
            facts = shard_facts(gate.settings, cases, [(c.model, c.recipe)
                                                       for c in gate.all_cases()])
            facts.update(environment=gate.env, exit_status=int(exitstatus))
            self.written = write_reports(self.records, self.config.stash[_SETTINGS], cases,
                                         facts=facts)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.records:
            return
        from compressgate.report.gate_run import summary_lines

        terminalreporter.section("compressgate")
        for line in summary_lines(self.records, self.written):
            terminalreporter.write_line(line)
        unused = _session(self.config).unused_baselines()
        if unused:
            terminalreporter.write_line("")
            terminalreporter.write_line("Unused baselines (no gated model x recipe reads them; "
                                        "delete them if that is intended):")
            for path in unused:
                terminalreporter.write_line(f"  {path}")
