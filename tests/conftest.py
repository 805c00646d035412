"""Shared fixtures. Tests under tests/unit must not need TensorFlow."""

from pathlib import Path

import pytest

# Imported before any in-process pytester run: pytester drops the modules a run imported
# from sys.modules afterwards, while ``compressgate.cli`` keeps its attribute to the old
# module, so functions of it sent to a worker (the run's log) would no longer pickle.
import compressgate.cli.commands  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
