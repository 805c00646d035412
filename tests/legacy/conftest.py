"""The legacy-runtime gate's fixtures. This process never imports TensorFlow: a child
process converts and writes LiteRT's outputs (``python -m compressgate legacy export``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[Path, dict]:
    """Every fixture x recipe converted (through the result cache) with LiteRT's outputs."""
    out = tmp_path_factory.mktemp("legacy-export")
    subprocess.run([sys.executable, "-m", "compressgate", "legacy", "export", str(out),
                    "--config", str(ROOT / "fixtures" / "manifest.json"),
                    "--jobs", str(os.cpu_count() or 1)],
                   check=True, cwd=ROOT)
    return out, json.loads((out / "index.json").read_text())
