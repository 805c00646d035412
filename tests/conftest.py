"""Shared fixtures, and how the suite runs on two xdist workers (``tox``: ``-n 2``).

Tests under tests/unit must not need TensorFlow. Under xdist every test holds the run's
quiet phase (``compressgate.measure.quiet``) shared while it sets up, runs and tears
down; a test marked ``timing`` (it asserts what a latency measurement decides) runs its
body alone, and so does each of the gate's own latency checks: the other worker waits.
"""

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

# Imported before any in-process pytester run: pytester drops the modules a run imported
# from sys.modules afterwards, while ``compressgate.cli`` keeps its attribute to the old
# module, so functions of it sent to a worker (the run's log) would no longer pickle.
import compressgate.cli.commands  # noqa: F401
from compressgate.plugin import quiet_phase

pytest_plugins = ["pytester"]

# Started first, so the two workers end together: the longest modules of a clean run
# (the fixture gate converts every case cold; the README blocks gate new models).
_LONGEST_FIRST = ("tests/gate/", "tests/byo/test_new_user.py",
                  "tests/tf/test_other_machine_class.py", "tests/tf/test_candidate_files.py",
                  "tests/byo/test_bad_models.py", "tests/plugin/test_lifecycle.py")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(_LONGEST_FIRST)
                     if item.nodeid.startswith(prefix)), len(_LONGEST_FIRST))

    items.sort(key=rank)  # stable: each module keeps its own order


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``, with the fixture gate's two modules in one worker: both read
    the one gate session, whose cold conversions would otherwise run twice at once."""
    if config.option.dist != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class _GateTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/gate" if nodeid.startswith("tests/gate/") else \
                super()._split_scope(nodeid)

    return _GateTogether(config, log)


def _phase(item: pytest.Item, alone: bool):
    quiet = quiet_phase(item.config)
    if quiet is None:
        return nullcontext()
    return quiet.timing() if alone else quiet.working()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _phase(item, alone=False):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("compressgate"):  # a gate check holds the phase itself
        return (yield)
    with _phase(item, alone=item.get_closest_marker("timing") is not None):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _phase(item, alone=False):
        return (yield)
