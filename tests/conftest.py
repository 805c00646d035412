"""Shared fixtures, and how the suite shares two xdist workers.

Tests under tests/unit must not need TensorFlow. ``tox`` runs the suite in two steps:
everything that does not time on two workers (``-n 2 --dist loadfile -m "not timing and
not latency"``), then, alone on the machine, the tests marked ``timing`` (they assert
what a latency measurement decides) and the fixture gate's latency checks.
"""

import os
from pathlib import Path

import pytest

# Imported before any in-process pytester run: pytester drops the modules a run imported
# from sys.modules afterwards, while ``compressgate.cli`` keeps its attribute to the old
# module, so functions of it sent to a worker (the run's log) would no longer pickle.
import compressgate.cli.commands  # noqa: F401

pytest_plugins = ["pytester"]

# The two xdist workers already keep both cores busy: a run or gate that a test starts
# takes one worker process, not one per core, each importing TensorFlow (6-9 s of CPU).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("COMPRESSGATE_JOBS", "1")

# Started first, so the two workers end together: the longest modules of a clean run
# (the fixture gate converts every case cold; the README blocks gate new models).
_LONGEST_FIRST = ("tests/gate/", "tests/bench/", "tests/byo/test_new_user.py",
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
    """``--dist loadfile``, with the fixture gate and its benchmarks in one worker: both
    read the one gate session, whose cold conversions would otherwise run twice at once."""
    if config.option.dist != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class _GateTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/gate" if nodeid.startswith(("tests/gate/", "tests/bench/")) else \
                super()._split_scope(nodeid)

    return _GateTogether(config, log)



def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # tox's second step selects by marker; a run narrowed by paths may have none of them.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and \
            session.config.option.markexpr == "timing or latency":
        session.exitstatus = pytest.ExitCode.OK
