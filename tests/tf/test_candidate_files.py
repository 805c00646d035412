"""Candidates end to end: an int8 file from Keras 3's own ``model.export(format="litert")``
gated against its float export, and a build command's int8 file gated against a tf_keras
model; then planted faults in those pipelines fail the right checks, and bad candidates
fail their conversion check with one line each."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
pytestmark = pytest.mark.tf
EXPORTS = TESTS / "exports.py"


def export(*args: str) -> None:
    subprocess.run([sys.executable, str(EXPORTS), *args], check=True, capture_output=True,
                   timeout=900)


def config(candidates_tiny: str, candidates_k3: str, overrides: str = "") -> str:
    return f"""
[models.tiny]
model = "tiny_mlp.keras"
data = "tiny.npz"
recipes = ["float"]
{candidates_tiny}

[models.k3]
model = "k3_float.tflite"
data = "tiny.npz"
recipes = ["float"]
{candidates_k3}
{overrides}
"""


def build(flags: str = "") -> str:
    return (f'build = "{sys.executable} {EXPORTS} keras2 --model tiny_mlp.keras '
            f'--data tiny.npz --out {{out}} {flags}"\ninputs = ["tiny_mlp.keras"]')


def gate(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *args],
        cwd=directory, env=env, text=True, capture_output=True, timeout=1800)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import tiny

    directory = tmp_path_factory.mktemp("candidates")
    model = tiny.train_mlp(directory, "tiny.npz", lambda keras: [
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(3, activation="softmax")])
    model.save(directory / "tiny_mlp.keras")
    export("keras3", "--data", str(directory / "tiny.npz"),
           "--float-out", str(directory / "k3_float.tflite"),
           "--out", str(directory / "k3_int8.tflite"))
    export("restamp", "--src", str(directory / "k3_int8.tflite"),
           "--out", str(directory / "k3_int8_restamped.tflite"))
    (directory / "tests").mkdir()
    (directory / "tests" / "test_gate.py").write_text(
        "def test_gate(compressgate_check):\n    compressgate_check()\n")
    return directory


def test_candidates_from_keras3_export_and_a_build_command_are_gated(project):
    (project / "compressgate.toml").write_text(config(
        f"[models.tiny.candidates.script_int8]\n{build()}",
        '[models.k3.candidates.keras3_int8]\nfile = "k3_int8.tflite"'))
    first = gate(project, "--compressgate-update=missing", "--compressgate-reports",
                 "reports")
    assert first.returncode == 0, first.stdout[-4000:]
    results = {r["recipe"]: r for r in json.loads(
        (project / "reports" / "summary.json").read_text())["results"]}
    for name in ("script_int8", "keras3_int8"):
        row = results[name]
        assert row["converted"] and row["accuracy_drop_pts"] < 2.0, row
        # (A 400-parameter model's int8 file is not smaller: no size promise here.)
        assert row["latency_ratio"] is not None and row["float_agreement"] > 0.9
        model = "tiny" if name == "script_int8" else "k3"
        stored = project / "baselines" / model / f"{name}.json"
        assert json.loads(stored.read_text())["metrics"]["converted"]
        # The accepted candidate file is stored beside its baseline, as a recipe's is.
        assert stored.with_suffix(".tflite").is_file()
    again = gate(project)
    assert again.returncode == 0 and re.search(r"checks: 0 failed", again.stdout), \
        again.stdout[-4000:]

    # Planted faults inside the pipelines: zero calibration in the build command's
    # converter; a re-export with the same outputs that runs twice as slowly.
    (project / "compressgate.toml").write_text(config(
        f"[models.tiny.candidates.script_int8]\n{build('--zero-calibration')}\n"
        f"[models.tiny.candidates.wide_int8]\n{build('--extra-class')}",
        '[models.k3.candidates.keras3_int8]\nfile = "k3_int8_restamped.tflite"\n'
        '[models.k3.candidates.float_as_int8]\nfile = "k3_float.tflite"',
        "[models.k3.recipe_overrides.keras3_int8]\nrepeat_invoke = 2"))
    faults = gate(project, "--compressgate-recipes",
                  "script_int8,wide_int8,keras3_int8,float_as_int8")
    failed = set(re.findall(r"^FAILED \S+::test_gate\[(\S+)\]", faults.stdout, re.M))
    assert {"tiny-script_int8-accuracy", "tiny-wide_int8-conversion",
            "k3-float_as_int8-conversion"} <= failed, faults.stdout[-6000:]
    # The slower file has the accepted file's outputs: only its latency is caught, as a
    # failure, or, timed on a busy machine (a parallel suite), as a regression the gate
    # declines to judge for load and lists with that reason.
    assert not {f"k3-keras3_int8-{c}" for c in ("accuracy", "baseline")} & failed
    busy = re.search(r"time vs accepted: machine busy while timing .*would be a "
                     r"regression.*\n\s+1 results: k3-keras3_int8", faults.stdout)
    assert "k3-keras3_int8-latency" in failed or busy, faults.stdout[-6000:]
    assert "time vs accepted" in faults.stdout
    assert ("input/output shapes [[8], [4]] differ from the float reference's "
            "[[8], [3]]") in faults.stdout
    assert "k3_float.tflite: declared quantization 'int8' but the file is float" \
        in faults.stdout


# A python with litert-torch (its venv takes 6.6 GB with torch: not installed by CI).
TORCH_PYTHON = os.environ.get("COMPRESSGATE_TORCH_PYTHON")


@pytest.mark.skipif(not TORCH_PYTHON, reason="COMPRESSGATE_TORCH_PYTHON (a venv's python "
                    "with litert-torch) not set; CI does not install torch")
def test_a_pytorch_candidate_built_in_its_own_venv(tmp_path):
    import numpy as np
    import tiny

    np.savez(tmp_path / "data.npz", **tiny.make_data())
    script = TESTS.parent / "examples" / "pytorch" / "export_int8.py"
    subprocess.run([TORCH_PYTHON, str(script), "--data", "data.npz", "--float-out",
                    "float.tflite", "--out", "unused.tflite"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=900)
    (tmp_path / "compressgate.toml").write_text(f"""
[models.torch_mlp]
model = "float.tflite"
data = "data.npz"
static_batch = 1
recipes = ["float"]
[models.torch_mlp.candidates.pt2e_int8]
build = "{TORCH_PYTHON} {script} --data data.npz --out {{out}}"
inputs = ["data.npz"]
promise = {{ io_dtype = "int8", integer_only = true, targets = [] }}
""")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_gate.py").write_text(
        "def test_gate(compressgate_check):\n    compressgate_check()\n")
    result = gate(tmp_path, "--compressgate-update=missing", "--compressgate-no-latency")
    assert result.returncode == 0, result.stdout[-4000:]
    assert (tmp_path / "baselines" / "torch_mlp" / "pt2e_int8.tflite").is_file()
    assert gate(tmp_path, "--compressgate-no-latency").returncode == 0
