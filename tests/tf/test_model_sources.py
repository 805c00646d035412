"""Every model source the config accepts loads to the same network."""

from __future__ import annotations

import numpy as np
import pytest

from compressgate.project.metrics import Metric
from compressgate.project.models import ModelSpec, path_sha256
from compressgate.project.sources import Source

pytestmark = pytest.mark.tf


def test_keras_h5_savedmodel_and_function_sources_agree(fixtures_dir, tmp_path):
    from compressgate.backends import tf as backend

    original = backend.load_model(fixtures_dir / "tabular_mlp.keras")
    original.save(tmp_path / "m.h5")
    original.save(tmp_path / "saved", save_format="tf")
    (tmp_path / "build.py").write_text(
        "import compressgate\nimport tf_keras as keras\n"
        f"def model():\n    return keras.models.load_model({str(fixtures_dir)!r} + "
        "'/tabular_mlp.keras')\n")
    x = np.random.default_rng(0).normal(size=(16, 30)).astype(np.float32)
    expected = original.predict(x, verbose=0)
    for text in ("m.h5", "saved", "build:model"):
        spec = ModelSpec("m", Source(text, tmp_path), Source("d.npz", tmp_path),
                         metric=Metric())
        model = backend.load_model(spec)
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6,
                                   err_msg=text)
    # A SavedModel directory is fingerprinted by its files, stably.
    assert path_sha256(tmp_path / "saved") == path_sha256(tmp_path / "saved")
    assert backend.model_digest(spec) == backend.model_digest(spec)


def test_a_function_that_returns_no_keras_model_is_named(tmp_path):
    from compressgate.backends import tf as backend
    from compressgate.errors import UserInputError

    (tmp_path / "bad.py").write_text("def model():\n    return 42\n")
    spec = ModelSpec("m", Source("bad:model", tmp_path), Source("d.npz", tmp_path))
    with pytest.raises(UserInputError, match=r"^bad:model: expected a tf_keras or Keras 3 "
                                             r"Model, got builtins.int"):
        backend.load_model(spec)
