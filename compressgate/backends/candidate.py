"""A candidate ``.tflite`` made by another pipeline (litert-torch's PT2E quantizer, Keras
3's ``model.export(format="litert")``, a team's converter script): read from its file or
written by its build command, then gated like a recipe's file. No TensorFlow here.

A build command runs in a fresh process (no shell; ``{out}`` is replaced by the path it
must write) in the config file's directory, with a timeout; a failure is one line with
the last lines the command wrote to stderr.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from compressgate.backends.protocol import Artifact
from compressgate.errors import UserInputError
from compressgate.measure import flatbuffer
from compressgate.project.models import ModelSpec, file_sha256
from compressgate.recipes import Candidate, Recipe

# Lines of a failed build's stderr quoted in its one-line error.
STDERR_LINES = 3


def path(candidate: Candidate, name: str) -> Path:
    """Where a ``file`` candidate is (relative to its config file's directory)."""
    assert candidate.file is not None, name
    return Path(candidate.root or ".") / candidate.file


def missing_file(spec: ModelSpec, name: str, candidate: Candidate) -> str | None:
    """One line when the candidate's file or a build input does not exist, else None."""
    wanted = [path(candidate, name)] if candidate.file is not None else [
        Path(candidate.root or ".") / i for i in candidate.inputs]
    for item in wanted:
        if not item.exists():
            what = "file" if candidate.file is not None else "build input"
            return f"model {spec.name!r}, candidate {name}: {what} {item} not found"
    return None


def digest(spec: ModelSpec, name: str, candidate: Candidate) -> str:
    """sha256 over what the candidate's bytes come from: the file itself, or the build
    command's text and the files it names as inputs (for the cache key)."""
    problem = missing_file(spec, name, candidate)
    if problem:
        raise UserInputError(problem)
    if candidate.file is not None:
        return file_sha256(path(candidate, name))
    text = hashlib.sha256(candidate.build.encode() if candidate.build else b"")
    for item in candidate.inputs:
        text.update(item.encode())
        text.update(file_sha256(Path(candidate.root or ".") / item).encode())
    return text.hexdigest()


def produce(spec: ModelSpec, recipe: Recipe, data) -> Artifact:
    """The candidate's bytes, checked to be what the config declares, or the reason
    there are none (``Artifact.error``)."""
    candidate = recipe.candidate
    assert candidate is not None, recipe.name
    where = f"candidate {recipe.name} of model {spec.name!r}"
    start = time.perf_counter()
    if candidate.file is not None:
        source = path(candidate, recipe.name)
        try:
            tflite = source.read_bytes()
        except OSError as exc:
            raise UserInputError(f"{where}: cannot read {source} ({exc.strerror})") from None
        label = str(source)
    else:
        tflite, error = _build(candidate, where)
        if tflite is None:
            return Artifact(None, error=error, convert_seconds=time.perf_counter() - start)
        label = f"{where} (built)"
    error = declared_mismatch(tflite, recipe, label)
    if error is None and data is not None:
        error = _fits(tflite, spec, data, label)
    seconds = time.perf_counter() - start
    return Artifact(None if error else tflite, error=error, convert_seconds=seconds)


def _build(candidate: Candidate, where: str) -> tuple[bytes | None, str | None]:
    assert candidate.build is not None
    with tempfile.TemporaryDirectory(prefix="compressgate-candidate-") as tmp:
        out = Path(tmp) / "candidate.tflite"
        args = [a.replace("{out}", str(out)) for a in shlex.split(candidate.build)]
        try:
            done = subprocess.run(args, cwd=candidate.root or None, capture_output=True,
                                  text=True, timeout=candidate.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            return None, f"{where}: build command not found: {args[0]}"
        except subprocess.TimeoutExpired:
            return None, f"{where}: build timed out after {candidate.timeout:g} s"
        if done.returncode != 0:
            tail = [line for line in done.stderr.splitlines() if line.strip()][-STDERR_LINES:]
            return None, (f"{where}: build exited with status {done.returncode}: "
                          + (" | ".join(tail) or "(nothing on stderr)"))
        if not out.is_file():
            return None, f"{where}: the build command wrote no file at {{out}}"
        return out.read_bytes(), None


def declared_mismatch(tflite: bytes, recipe: Recipe, label: str) -> str | None:
    """One line when a file declared quantized carries no quantization at all."""
    state = flatbuffer.precision(tflite, name=label)
    if recipe.quantization != "none" and state.is_float:
        return (f"{label}: declared quantization {recipe.quantization!r} but the file is "
                "float (no quantized tensor, no float16 weight)")
    return None


def _fits(tflite: bytes, spec: ModelSpec, data, label: str) -> str | None:
    from compressgate.backends.tflite_source import describe

    try:
        info = describe(tflite, name=label)
        data.check_fits(input_shape=tuple(info["input_shape"]),
                        num_classes=info["output_units"], model=spec.name,
                        data=str(spec.data), classification=spec.metric.is_accuracy)
    except UserInputError as exc:
        return str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
    return None


def io_shapes(tflite: bytes, *, name: str) -> tuple[tuple[int, ...], ...]:
    """Input and output shapes without the batch dimension (-1 where dynamic)."""
    from compressgate.measure.litert import interpreter

    interp = interpreter(tflite, name=name)
    details = [*interp.get_input_details(), *interp.get_output_details()]
    return tuple(tuple(int(d) for d in item["shape_signature"][1:]) for item in details)


def shape_mismatch(tflite: bytes, reference: bytes, *, name: str) -> str | None:
    """One line when the candidate's inputs or outputs differ from the float
    reference's (batch aside)."""
    got, want = io_shapes(tflite, name=name), io_shapes(reference, name="float reference")
    if got != want:
        return (f"{name}: input/output shapes {list(map(list, got))} differ from the float "
                f"reference's {list(map(list, want))} (batch aside)")
    return None


def compress(backend, spec: ModelSpec, recipe: Recipe, data) -> Artifact:
    """The recipe's file: a candidate's own, else what ``backend`` converts."""
    if recipe.candidate is not None:
        return produce(spec, recipe, data)
    return backend.compress(spec, recipe, data)
