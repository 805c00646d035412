"""A new user gates a model the project has never seen, through the public commands only:
the README's "Gate your own model" block, run verbatim in an empty directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import newuser
import pytest

pytestmark = pytest.mark.tf

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def readme_block() -> str:
    text = README.read_text()
    match = re.search(r"<!-- gate-your-own-model -->\n```bash\n(.*?)```\n"
                      r"<!-- /gate-your-own-model -->", text, re.S)
    assert match, "README lost its 'Gate your own model' block"
    return match.group(1)


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=1500)


def run_readme(directory: Path) -> list[subprocess.CompletedProcess]:
    """Each line of the README block in turn; stop at the first failure."""
    results = []
    for line in readme_block().strip().splitlines():
        result = shell(line, directory)
        results.append(result)
        assert result.returncode == 0, (
            f"`{line}` exited {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}")
    return results


def assert_all_passed(result: subprocess.CompletedProcess) -> None:
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ \d+ passed in [\d.]+s(?: \([\d:]+\))? =+", last), last


def test_regressor_with_mae_through_the_readme(tmp_path):
    newuser.regressor(tmp_path)
    results = run_readme(tmp_path)
    text = (tmp_path / "compressgate.toml").read_text()
    # tfmot's default QAT scheme refuses Conv1D and MaxPooling1D; compressgate's configs
    # cover them, so init keeps qat_int8.
    assert "# left out" not in text
    config = tomllib.loads(text)
    assert config["models"]["model"]["metric"]["function"] == "mae"
    rows = json.loads((tmp_path / "reports" / "summary.json").read_text())["results"]
    assert [r["recipe"] for r in rows] == ["float", "ptq_dynamic", "ptq_int8", "qat_int8"]
    assert all(r["metric"] == "mae" and r["converted"] for r in rows)
    int8 = rows[2]
    assert int8["score"] > 0 and int8["metric_loss"] < int8["max_loss"]
    stored = json.loads((tmp_path / "baselines" / "model" / "ptq_int8.json").read_text())
    assert stored["metrics"]["mae"] == pytest.approx(int8["score"], rel=1e-5)
    assert_all_passed(results[-1])


def test_classifier_through_the_readme_then_a_regression(tmp_path):
    newuser.classifier(tmp_path)
    results = run_readme(tmp_path)
    text = (tmp_path / "compressgate.toml").read_text()
    # LayerNormalization: tfmot refuses it, compressgate's config quantizes its output.
    assert "# left out" not in text
    recipes = tomllib.loads(text)["models"]["model"]["recipes"]
    assert recipes == ["float", "ptq_dynamic", "ptq_int8", "qat_int8"]
    assert "# TensorFlow Lite Micro: ptq_int8 " in text  # init says where it runs
    # The file init converted to say so is the project's result: the first run reuses it.
    run = results[1]
    assert "model x ptq_int8: cached" in run.stdout + run.stderr, run.stderr[-2000:]
    assert "model x ptq_dynamic: cached" not in run.stdout + run.stderr
    assert sorted(p.stem for p in (tmp_path / "baselines" / "model").glob("*.json")) == \
        ["float", "ptq_dynamic", "ptq_int8", "qat_int8"]
    assert_all_passed(results[-1])
    # The same project, but int8 calibrated on zeros: the gate fails the right checks.
    config = tmp_path / "compressgate.toml"
    header = "[models.model.recipe_overrides.ptq_int8]\n"
    planted = header + "calibration_scale = 0.0\n"
    # init may have written this table already (a target promise it measured).
    config.write_text(text.replace(header, planted) if header in text
                      else text + "\n" + planted)
    result = shell("pytest -q --compressgate-no-latency", tmp_path)
    assert result.returncode == 1
    failed = set(re.findall(r"FAILED tests/test_compressgate.py::test_gate\[(.*?)\]",
                            result.stdout))
    assert failed == {"model-ptq_int8-accuracy", "model-ptq_int8-baseline"}, result.stdout


def pasted_acceptance(stdout: str) -> str:
    """The lines under "To accept every broken promise ..." in pytest's closing summary."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("To accept every broken promise"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return "\n".join(body)


def pasted_into(text: str, paste: str) -> str:
    """``text`` with each pasted table replacing a table of the same name (init may have
    written one: the printed table keeps its promise fields), the rest appended."""
    for block in re.split(r"\n(?=\[)", paste.strip()):
        header = block.splitlines()[0]
        if header in text.splitlines():
            text = re.sub(rf"^{re.escape(header)}\n(?:[^\[\n].*\n?)*", block + "\n", text,
                          flags=re.M)
        else:
            text += "\n" + block + "\n"
    return text


def green_after_one_paste(directory: Path, why: str,
                          said: list | None = None) -> subprocess.CompletedProcess:
    """The README block; where the first pytest fails, only broken promises may fail: the
    override it prints is pasted once (``why`` filled in) and the block's pytest lines
    run again. Returns the first pytest's result; ``said`` gets init's and run's."""
    lines = readme_block().strip().splitlines()
    for line in lines[:2]:  # init, run
        result = shell(line, directory)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        if said is not None:
            said.append(result)
    first = shell(lines[2], directory)  # pytest --compressgate-update=missing
    if first.returncode != 0:
        assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
        failed = set(re.findall(r"FAILED tests/test_compressgate.py::test_gate\[(.*?)\]",
                                first.stdout))
        assert failed and all(f.endswith(("-size", "-accuracy")) for f in failed), \
            first.stdout[-3000:]
        paste = pasted_acceptance(first.stdout).replace(
            "the measured reason this is acceptable", why)
        config = directory / "compressgate.toml"
        config.write_text(pasted_into(config.read_text(), paste))
    for line in lines[2:]:
        result = shell(line, directory)
        assert result.returncode == 0, result.stdout[-3000:]
    assert_all_passed(result)
    return first


def test_small_conv1d_classifier_green_after_one_conscious_edit(tmp_path):
    """A 4K-parameter 1-D CNN: int8 cannot be 3.5x smaller than float on a file this
    small. The first pytest says so and prints the override; pasted once (why filled in),
    the gate is green, and the promise it now holds is the measured one."""
    newuser.conv1d_classifier(tmp_path)
    first = green_after_one_paste(
        tmp_path, "4K parameters: per-tensor scales and graph overhead dominate the file")
    assert "-size]" in first.stdout
    config = tmp_path / "compressgate.toml"
    overrides = tomllib.loads(config.read_text())["models"]["model"]["recipe_overrides"]
    rows = {r["recipe"]: r for r in
            json.loads((tmp_path / "reports" / "summary.json").read_text())["results"]}
    assert overrides
    for recipe, override in overrides.items():
        measured = rows[recipe]["size_ratio"]
        assert measured >= override["promise"]["min_size_ratio"] > measured - 0.01
    assert (tmp_path / ".gitignore").read_text().count(".compressgate_cache/") == 1


def test_bigru_classifier_green_after_one_conscious_edit(tmp_path):
    """A Bidirectional(GRU) saved at a dynamic batch: init finds the GRU inside the wrapper
    and sets static_batch; float, dynamic and int8 (its loop unrolled: TensorFlow's
    calibrator crashes on TFLite's WHILE) convert and keep their accuracy; the files are
    no smaller than float's, which the one paste accepts at the measured ratios."""
    newuser.bigru_classifier(tmp_path)
    first = green_after_one_paste(tmp_path, "2K parameters; int8 unrolls the GRU loop")
    assert "-size]" in first.stdout and "-accuracy]" not in first.stdout
    model = tomllib.loads((tmp_path / "compressgate.toml").read_text())["models"]["model"]
    assert model["static_batch"] == 1
    assert model["recipes"] == ["float", "ptq_dynamic", "ptq_int8"]
    rows = json.loads((tmp_path / "reports" / "summary.json").read_text())["results"]
    assert [r["recipe"] for r in rows if r["converted"]] == model["recipes"]


@pytest.mark.parametrize("build", ["keras3_conv_bn", "keras3_dense", "keras3_no_twin"])
def test_keras3_model_through_the_readme(tmp_path, build):
    """A model saved by Keras 3 (what TensorFlow 2.21's tf.keras is): the README block
    runs verbatim. With a verified tf_keras twin every recipe converts (QAT too); with a
    layer tf_keras has no class for, init names it, leaves QAT out, and the converter
    recipes convert the Keras 3 model itself."""
    getattr(newuser, build)(tmp_path)
    said: list[subprocess.CompletedProcess] = []
    green_after_one_paste(tmp_path, "a small Keras 3 model: per-tensor overhead", said)
    init, run = said
    text = (tmp_path / "compressgate.toml").read_text()
    if build == "keras3_no_twin":
        # Keras names an ops layer by how many this process built before ('tanh_1').
        name = re.search(r"layer '(tanh(?:_\d+)?)' \(a keras\.ops call", init.stderr)
        assert name, init.stderr[-2000:]
        blocker = f"layer {name.group(1)!r} (a keras.ops call, Tanh) has no tf_keras twin"
        assert f"model model: Keras 3 model: {blocker}" in run.stderr
        said = (f"Keras 3 model: {blocker}; the converter recipes (float, ptq_*, lq_*) "
                "convert the Keras 3 model itself")
        expected = ["float", "ptq_dynamic", "ptq_int8"]
        assert f"left out qat_int8: needs tf_keras (tfmot), and {blocker}" in init.stderr
    else:
        said = "Keras 3 model: tf_keras twin verified on 300 test rows: top-1 identical"
        expected = ["float", "ptq_dynamic", "ptq_int8", "qat_int8"]
        assert "# left out" not in text
    assert said in init.stderr and said in text
    assert tomllib.loads(text)["models"]["model"]["recipes"] == expected
    rows = json.loads((tmp_path / "reports" / "summary.json").read_text())["results"]
    assert sorted(r["recipe"] for r in rows if r["converted"]) == sorted(expected)
    # The float reference is the user's Keras 3 model, not the twin.
    assert next(r for r in rows if r["recipe"] == "float")["keras_agreement"] == 1.0
    if build == "keras3_no_twin":
        # Named for the recipes that need tf_keras: strict xfails, so the gate is green.
        result = shell("pytest -q --compressgate-recipes=qat_int8,prune_int8 "
                       "--compressgate-no-latency -rx", tmp_path)
        assert result.returncode == 0, result.stdout[-3000:]
        assert re.search(r"\b2 xfailed\b", result.stdout), result.stdout[-2000:]
        assert result.stdout.count(f"needs tf_keras (tfmot), and {blocker}") >= 2, \
            result.stdout[-2000:]
