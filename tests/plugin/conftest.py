from pathlib import Path

import pytest

# Imported here, before any in-process pytester run, so the conversion worker it keeps
# (with TensorFlow loaded) outlives each run's sys.modules snapshot and serves them all.
import compressgate.pipeline.isolation  # noqa: F401


@pytest.fixture(scope="session")
def tiny_fixtures(tmp_path_factory) -> Path:
    import tiny

    return tiny.build(tmp_path_factory.mktemp("tiny-fixtures"))
