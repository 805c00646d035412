"""The project's configuration: which models to gate, on which data, with which recipes.

It lives in ``compressgate.toml`` or in ``[tool.compressgate]`` of ``pyproject.toml``
(the first found in the project directory). Files named in ``include`` (TOML or JSON,
same format) add models; the bundled fixtures are described that way
(``fixtures/manifest.json``). Validation is pydantic's; the first problem is reported in
one line naming the file and the field. Paths resolve against the file that names them.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compressgate.errors import UserInputError
from compressgate.measure.litert import LATENCY_PAIRS
from compressgate.measure.remote import Host
from compressgate.project.metrics import Metric
from compressgate.project.models import NOT_FIELDS, ModelSpec
from compressgate.project.sources import Source
from compressgate.recipes import Recipe, registered_recipes
from compressgate.tolerances import Tolerances

CONFIG_FILES = ("compressgate.toml", "pyproject.toml")
# Worker processes for a job that shares its cores (a run inside pytest-xdist, a CI
# matrix on one machine): over the config's ``jobs`` and the default, one per core.
JOBS_ENV = "COMPRESSGATE_JOBS"
_STRICT = ConfigDict(extra="forbid")


def names(value: str | list[str] | None) -> list[str] | None:
    """Names given as one comma- or space-separated string ("a,b", "a b") or as a list:
    the one reading of a list of names, for the config, the command line and the
    plugin's options. None (not given) stays None."""
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    # Anything but a string is left for pydantic to name as the wrong type.
    return [v.strip() if isinstance(v, str) else v for v in items
            if not isinstance(v, str) or v.strip()]


class MetricConfig(BaseModel):
    model_config = _STRICT

    function: str = Field(description="accuracy, mae, mse, or module:function(y_true, outputs)")
    higher_is_better: bool | None = None
    max_loss: float | None = Field(None, ge=0)
    tolerance: float | None = Field(None, ge=0)


class CandidateConfig(BaseModel):
    """A ``.tflite`` made by another pipeline, gated as one of the model's recipes."""

    model_config = _STRICT

    file: str | None = Field(None, description="the .tflite the pipeline wrote")
    build: str | None = Field(None, description="a command that writes {out}")
    inputs: list[str] = Field([], description="files the build reads (in the cache key)")
    timeout: float = Field(600.0, gt=0)
    quantization: Literal["none", "dynamic", "float16", "int8", "int16x8"] = "int8"
    promise: dict[str, Any] = {}
    description: str = ""
    why: str | None = None
    unsupported: str | None = None
    nondeterministic: str | None = None


class ModelConfig(BaseModel):
    model_config = _STRICT

    model: str = Field(description=".keras, .h5, a SavedModel directory, module:function, "
                       "or a float .tflite")
    data: str = Field(description=".npz with x_/y_ train, calib, test, or module:function")
    metric: str | MetricConfig = "accuracy"
    custom_objects: str | None = Field(None, description="module:function -> {name: object}")
    static_batch: int | None = Field(None, ge=1)
    latency_threads: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, description="thread counts the model is deployed at, e.g. [1, 4]: the "
        "latency check also times each and requires the outputs of one thread")
    recipes: list[str] | None = None
    recipe_overrides: dict[str, dict[str, Any]] = {}
    candidates: dict[str, CandidateConfig] = {}
    tolerances: Tolerances | None = None
    about: dict[str, Any] = Field({}, description="for people: how it was built, figures")

    _split = field_validator("recipes", mode="before")(names)


class BoardConfig(BaseModel):
    """A board the gate also measures on, over SSH (``[boards.NAME]``): key auth only."""

    model_config = _STRICT

    ssh: str = Field(description="user@host (options from ~/.ssh/config apply)")
    python: str = Field(description="absolute path of a Python on the board with "
                        "ai-edge-litert and numpy")
    port: int | None = Field(None, ge=1, le=65535)
    identity: str | None = Field(None, description="private key file (ssh -i)")
    ssh_options: list[str] = Field([], description="more ssh -o options, e.g. "
                                   "StrictHostKeyChecking=accept-new")
    connect_timeout: float = Field(10.0, gt=0)
    timeout: float = Field(1800.0, gt=0, description="seconds for one measurement")
    lock_timeout: float | None = Field(None, ge=0, description="seconds to wait for "
                                       "another gate on the board (none: no limit)")

    @field_validator("ssh")
    @classmethod
    def _destination(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("expected user@host (no spaces)")
        return value

    @field_validator("python")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected the absolute path of the board's Python, "
                             "e.g. /opt/venv/bin/python")
        return value

    def host(self, name: str, root: Path) -> Host:
        identity = None if self.identity is None \
            else str(root / Path(self.identity).expanduser())
        return Host(name, self.ssh, self.python, port=self.port, identity=identity,
                    options=tuple(self.ssh_options), connect_timeout=self.connect_timeout,
                    timeout=self.timeout, lock_timeout=self.lock_timeout)


class ProjectConfig(BaseModel):
    model_config = _STRICT

    baselines: str = "baselines"
    reports: str = "reports"
    include: list[str] = []
    models: dict[str, ModelConfig] = {}
    recipes: list[str] | None = None
    tolerances: Tolerances = Tolerances()
    latency: bool = True
    latency_pairs: int = Field(LATENCY_PAIRS, ge=6)
    jobs: int | None = Field(None, ge=1)
    command: str = "pytest"
    # Fail comparisons this machine cannot make instead of listing them as not judged.
    strict: bool = False
    # Target devices measured over SSH besides this machine ("Gating on your device").
    boards: dict[str, BoardConfig] = {}
    about: dict[str, Any] = {}

    _split = field_validator("recipes", mode="before")(names)


@dataclass(frozen=True)
class Project:
    """A loaded configuration: settings, and every model it (and its includes) names."""

    path: Path | None
    root: Path
    config: ProjectConfig
    specs: dict[str, ModelSpec] = field(default_factory=dict)

    @property
    def baselines(self) -> Path:
        return self.root / self.config.baselines

    @property
    def reports(self) -> Path:
        return self.root / self.config.reports

    @property
    def jobs(self) -> int:
        """Conversion worker processes: ``$COMPRESSGATE_JOBS``, else the config's
        ``jobs``, else one per core."""
        given = os.environ.get(JOBS_ENV, "").strip()
        if given:
            if not given.isdigit() or int(given) < 1:
                raise UserInputError(f"${JOBS_ENV}: expected a whole number of worker "
                                     f"processes >= 1, got {given!r}")
            return int(given)
        return self.config.jobs or os.cpu_count() or 1

    @property
    def boards(self) -> dict[str, Host]:
        """The boards the gate measures on, by name (an identity file resolves against
        the config file's directory)."""
        return {name: board.host(name, self.root) for name, board in self.config.boards.items()}


def find(directory: Path) -> Path | None:
    """The config file of the project in ``directory``, if any."""
    for name in CONFIG_FILES:
        path = directory / name
        if path.is_file() and (name != "pyproject.toml" or _pyproject_table(path) is not None):
            return path
    return None


def load(path: Path | None = None, *, directory: Path = Path(".")) -> Project:
    """The project at ``path`` (a config file or a directory holding one)."""
    if path is not None and path.is_dir():
        directory, path = path, find(path)
    elif path is None:
        path = find(directory)
    if path is None:
        return Project(None, directory, ProjectConfig())
    if not path.exists():
        raise UserInputError(f"{path}: config file not found")
    config = _parse(path)
    specs: dict[str, ModelSpec] = {}
    _add_models(specs, config, path, seen={path.resolve()})
    return Project(path, path.parent, config, specs)


def _add_models(specs: dict[str, ModelSpec], config: ProjectConfig, path: Path,
                seen: set[Path]) -> None:
    for name, entry in config.models.items():
        if name in specs:
            raise UserInputError(f"{path}: model {name!r} is defined twice")
        specs[name] = _spec(name, entry, path)
    for included in config.include:
        target = (path.parent / included).resolve()
        if target in seen:
            raise UserInputError(f"{path}: include {included!r} includes itself")
        if not target.is_file():
            raise UserInputError(f"{path}: include {included!r}: file not found ({target})")
        _add_models(specs, _parse(target), target, seen | {target})


def _spec(name: str, entry: ModelConfig, path: Path) -> ModelSpec:
    where = f"{path}: models.{name}"
    root = path.parent
    metric = entry.metric if isinstance(entry.metric, MetricConfig) \
        else MetricConfig(function=entry.metric)
    candidates = {n: _candidate(n, c, root, f"{where}.candidates.{n}")
                  for n, c in entry.candidates.items()}
    # A candidate's own why / unsupported / nondeterministic act as a recipe override's
    # (an explicit recipe_overrides entry of that name wins).
    overrides = {**{n: {k: v for k, v in c.model_dump(include=set(NOT_FIELDS)).items()
                        if v is not None}
                    for n, c in entry.candidates.items()}, **entry.recipe_overrides}
    spec = ModelSpec(
        name=name,
        model=Source(entry.model, root),
        data=Source(entry.data, root),
        static_batch=entry.static_batch,
        recipe_overrides={k: v for k, v in overrides.items() if v},
        metric=Metric.build(metric.function, higher_is_better=metric.higher_is_better,
                            max_loss=metric.max_loss, tolerance=metric.tolerance, root=root,
                            where=f"{where}.metric"),
        custom_objects=Source(entry.custom_objects, root) if entry.custom_objects else None,
        recipes=tuple(entry.recipes) if entry.recipes is not None else None,
        tolerances=entry.tolerances,
        origin=path,
        candidates=candidates,
        latency_threads=tuple(sorted({1, *(entry.latency_threads or ())})),
    )
    for recipe in [*(entry.recipes or ()), *entry.recipe_overrides]:
        try:
            spec.resolve(recipe)  # an unknown recipe or bad override fails here
        except UserInputError as exc:
            raise UserInputError(f"{where}: {exc}") from None
    return spec


def _candidate(name: str, entry: CandidateConfig, root: Path, where: str) -> Recipe:
    if name in {r.name for r in registered_recipes()}:
        raise UserInputError(f"{where}: {name!r} is a recipe's name; name the candidate "
                             "after its pipeline (e.g. pt2e_int8)")
    fields = entry.model_dump(include={"file", "build", "inputs", "timeout"})
    description = entry.description or (f"candidate file {entry.file}" if entry.file
                                        else f"candidate built by: {entry.build}")
    try:
        return Recipe.from_dict(
            {"name": name, "description": description, "quantization": entry.quantization,
             "optimize": False, "promise": entry.promise,
             "candidate": {**fields, "root": str(root)}}, where=where)
    except UserInputError as exc:
        raise UserInputError(str(exc) if str(exc).startswith(where)
                             else f"{where}: {exc}") from None


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    return _read_toml(path).get("tool", {}).get("compressgate")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{path}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: unreadable ({exc})") from None


def _parse(path: Path) -> ProjectConfig:
    if path.suffix == ".json":
        try:
            raw: Any = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserInputError(f"{path}: unreadable JSON ({exc})") from None
        table = ""
    elif path.name == "pyproject.toml":
        raw, table = _pyproject_table(path) or {}, "[tool.compressgate] "
    else:
        raw, table = _read_toml(path), ""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserInputError(f"{path}: {table}{_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    # Drop pydantic's union-branch labels ("str", "MetricConfig") from the location.
    loc = ".".join(str(p) for p in first["loc"] if p not in ("str", "MetricConfig"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    got = f", got {repr(first['input'])[:80]}" if first["type"] != "missing" else ""
    return f"{loc or 'config'}: {first['msg']}{got}{more}"[:400]
