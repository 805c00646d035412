import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session")
def tiny_fixtures(tmp_path_factory) -> Path:
    import tiny

    return tiny.build(tmp_path_factory.mktemp("tiny-fixtures"))
