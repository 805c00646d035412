"""Candidates: ``.tflite`` files made by other pipelines, configured per model and gated as
its recipes; their config errors, build failures and declared precision (no TensorFlow)."""

import json
import sys
from pathlib import Path

import pytest

from compressgate.backends import candidate
from compressgate.errors import UserInputError
from compressgate.gate.session import GateSession, Settings
from compressgate.project import config

INT8 = Path(__file__).resolve().parents[1] / "data" / "tabular_mlp_ptq_int8.tflite"


def project(tmp_path: Path, candidates: dict, **model) -> Path:
    (tmp_path / "m.keras").write_bytes(b"not read by these tests")
    (tmp_path / "m.npz").write_bytes(b"")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"models": {"m": {
        "model": "m.keras", "data": "m.npz", "recipes": ["float", "ptq_int8"],
        "candidates": candidates, **model}}}))
    return path


def spec(tmp_path: Path, candidates: dict, **model):
    return config.load(project(tmp_path, candidates, **model)).specs["m"]


def test_a_candidate_is_one_of_its_models_recipes_with_its_promise_and_why(tmp_path):
    (tmp_path / "e.tflite").write_bytes(INT8.read_bytes())
    s = spec(tmp_path, {"pt2e_int8": {"file": "e.tflite", "why": "torch export",
                                      "promise": {"min_size_ratio": 3.0}}})
    recipe = s.resolve("pt2e_int8")
    assert recipe.candidate.file == "e.tflite" and recipe.quantization == "int8"
    assert recipe.promise.min_size_ratio == 3.0 and not recipe.needs_keras
    assert s.recipe_overrides["pt2e_int8"] == {"why": "torch export"}
    gate = GateSession(Settings(config=project(tmp_path, {
        "pt2e_int8": {"file": "e.tflite"}})))
    assert [c.recipe for c in gate.all_cases()] == ["float", "ptq_int8", "pt2e_int8"]
    # The command line may name it; another model's candidate is not this model's.
    picked = GateSession(Settings(config=gate.settings.config, recipes=("pt2e_int8",)))
    assert [c.recipe for c in picked.all_cases()] == ["pt2e_int8"]
    # A recipe override of that name applies on top, as for any recipe.
    s = spec(tmp_path, {"pt2e_int8": {"file": "e.tflite"}},
             recipe_overrides={"pt2e_int8": {"promise": {"min_size_ratio": 1.5}}})
    assert s.resolve("pt2e_int8").promise.min_size_ratio == 1.5


@pytest.mark.parametrize(("entry", "expected"), [
    ({}, "candidate: expected exactly one of file or build"),
    ({"file": "a.tflite", "build": "x {out}"}, "exactly one of file or build"),
    ({"build": "python export.py"}, "candidate.build: expected a command containing {out}"),
    ({"file": "a.tflite", "timeout": 0}, "timeout"),
    ({"file": "a.tflite", "promise": {"min_size_ratio": "3x"}}, "promise.min_size_ratio"),
    ({"file": "a.tflite", "quantization": "int4"}, "quantization"),
])
def test_a_bad_candidate_entry_is_one_line_naming_it(tmp_path, entry, expected):
    with pytest.raises(UserInputError) as error:
        spec(tmp_path, {"pt2e_int8": entry})
    line = str(error.value)
    assert "\n" not in line and expected in line and "pt2e_int8" in line


def test_a_candidate_named_like_a_recipe_is_refused(tmp_path):
    with pytest.raises(UserInputError, match=r"candidates\.ptq_int8: 'ptq_int8' is a "
                                             r"recipe's name"):
        spec(tmp_path, {"ptq_int8": {"file": "a.tflite"}})


def test_a_missing_candidate_file_stops_the_gate_with_one_line(tmp_path):
    gate = GateSession(Settings(config=project(tmp_path, {"pt2e_int8": {
        "file": "exports/model_int8.tflite"}})))
    with pytest.raises(UserInputError) as error:
        gate.check_sources()
    assert str(error.value).startswith(
        f"model 'm', candidate pt2e_int8: file {tmp_path}/exports/model_int8.tflite not "
        "found (set models.m.candidates.pt2e_int8 in")
    built = GateSession(Settings(config=project(tmp_path, {"b": {
        "build": "python export.py --out {out}", "inputs": ["export.py"]}})))
    with pytest.raises(UserInputError, match=r"candidate b: build input .*export\.py not"):
        built.check_sources()


def test_the_cache_digest_follows_the_files_bytes_and_the_builds_inputs(tmp_path):
    (tmp_path / "e.tflite").write_bytes(b"one")
    s = spec(tmp_path, {"c": {"file": "e.tflite"}})
    first = candidate.digest(s, "c", s.candidates["c"].candidate)
    (tmp_path / "e.tflite").write_bytes(b"two")
    assert candidate.digest(s, "c", s.candidates["c"].candidate) != first
    (tmp_path / "export.py").write_text("v1")
    b = spec(tmp_path, {"c": {"build": "python export.py {out}", "inputs": ["export.py"]}})
    first = candidate.digest(b, "c", b.candidates["c"].candidate)
    (tmp_path / "export.py").write_text("v2")
    assert candidate.digest(b, "c", b.candidates["c"].candidate) != first
    other = spec(tmp_path, {"c": {"build": "python export.py --fast {out}",
                                  "inputs": ["export.py"]}})
    assert candidate.digest(other, "c", other.candidates["c"].candidate) != \
        candidate.digest(b, "c", b.candidates["c"].candidate)


def build(tmp_path: Path, code: str, **entry):
    command = f"{sys.executable} -c {json.dumps(code)} {{out}}"
    s = spec(tmp_path, {"c": {"build": command, **entry}})
    return candidate.produce(s, s.resolve("c"), None)


def test_a_build_command_writes_the_file_in_the_config_directory(tmp_path):
    (tmp_path / "source.tflite").write_bytes(INT8.read_bytes())
    code = ("import shutil, sys; "
            "shutil.copy('source.tflite', sys.argv[1])")  # relative: runs in the config dir
    artifact = build(tmp_path, code)
    assert artifact.error is None and artifact.tflite == INT8.read_bytes()


@pytest.mark.parametrize(("code", "entry", "expected"), [
    ("import sys; print('progress'); sys.stderr.write('a\\nb\\nc\\nCalibration failed\\n');"
     " sys.exit(3)", {}, "build exited with status 3: b | c | Calibration failed"),
    ("pass", {}, "the build command wrote no file at {out}"),
    ("import time; time.sleep(30)", {"timeout": 0.5}, "build timed out after 0.5 s"),
])
def test_a_failed_build_is_one_line_with_its_last_stderr_lines(tmp_path, code, entry,
                                                              expected):
    artifact = build(tmp_path, code, **entry)
    assert artifact.tflite is None and "\n" not in artifact.error
    assert artifact.error == f"candidate c of model 'm': {expected}"


def test_a_build_command_that_does_not_exist_is_one_line(tmp_path):
    s = spec(tmp_path, {"c": {"build": "no-such-exporter --out {out}"}})
    artifact = candidate.produce(s, s.resolve("c"), None)
    assert artifact.error == ("candidate c of model 'm': build command not found: "
                              "no-such-exporter")


def test_a_float_file_declared_quantized_is_refused_naming_it(tmp_path):
    from compressgate.recipes import get_recipe

    quantized = INT8.read_bytes()
    assert candidate.declared_mismatch(quantized, get_recipe("ptq_int8"), "x") is None
    s = spec(tmp_path, {"c": {"file": "f.tflite"}, "f": {"file": "f.tflite",
                                                         "quantization": "none"}})
    float_file = _float_tflite()
    line = candidate.declared_mismatch(float_file, s.resolve("c"), "exports/f.tflite")
    assert line == ("exports/f.tflite: declared quantization 'int8' but the file is float "
                    "(no quantized tensor, no float16 weight)")
    assert candidate.declared_mismatch(float_file, s.resolve("f"), "f") is None


def _float_tflite() -> bytes:
    """The int8 test file with every tensor's quantization parameters dropped and its
    types made float32: a file with no quantized tensor."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(INT8.read_bytes(), 0)
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.quantization = None
            tensor.type = schema.TensorType.FLOAT32
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_init_refuses_a_quantized_file_as_the_model_and_names_candidates(tmp_path):
    from compressgate.workflows.init import write

    model = tmp_path / "model_int8.tflite"
    model.write_bytes(INT8.read_bytes())
    with pytest.raises(UserInputError) as error:
        write(model, data=None, name=None, config_path=tmp_path / "compressgate.toml",
              recipes=None, tests=None, force=False)
    line = str(error.value)
    assert line.startswith(f"{model}: already quantized (") and "\n" not in line
    assert 'gate this file as a candidate of its float model' in line
    assert 'file = "model_int8.tflite"' in line
    assert not (tmp_path / "compressgate.toml").exists()
