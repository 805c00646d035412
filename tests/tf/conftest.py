"""Fixtures of the TensorFlow tests."""

import pytest

from compressgate.gate.session import GateSession, Settings


@pytest.fixture(scope="module")
def session(fixtures_dir):
    """A gate session over the bundled fixtures and the committed baselines."""
    return GateSession(Settings(config=fixtures_dir / "manifest.json",
                                baselines=fixtures_dir.parent / "baselines"))
