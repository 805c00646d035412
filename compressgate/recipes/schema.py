"""What a recipe is: its typed fields (``Recipe`` and the settings it nests), what it
promises (``Promise``), and the rules each field keeps (checked with
``compressgate.recipes.validation``); the float reference every recipe is measured
against (``REFERENCE``, ``with_reference``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from compressgate.recipes.datafree import DataFree, check_dfq
from compressgate.recipes.validation import check_types, deep_merge, from_dict, require

Quantization = Literal["none", "dynamic", "float16", "int8", "int16x8"]
Structure = Literal["unstructured", "2by4"]
Criterion = Literal["l1", "bn_gamma"]
KeepFloat = tuple[str, ...] | Literal["auto"] | None
# Runtimes a promise may name besides LiteRT (compressgate.measure.targets runs them).
TARGETS = ("tflm",)
# The recipe every drop and ratio is measured against: the float conversion.
REFERENCE = "float"

CentroidInit = Literal["kmeans_plus_plus", "linear", "density_based", "random"]
# What QAT keeps of an earlier stage: pruning's zeros or clustering's shared values
# (tfmot's collaborative optimization schemes).
QatPreserve = Literal["sparsity", "clusters"]
# Where a QAT fine-tune starts: "calibrated" (every quantization range from the
# calibration split, BatchNormalization frozen: the pretrained model as PTQ would
# quantize it) or "tfmot" (tfmot's own start: ranges at [-6, 6] moving 0.1 % a step,
# BatchNormalization statistics in training mode). See backends/tf/qat_start.py.
QatStart = Literal["calibrated", "tfmot"]
# Recipes of litert-quantizer 0.11 (``litert_quantizer.recipe``) that quantize a whole
# model; tests/tf/test_litert_quantizer.py checks the package offers each. "static_*"
# ones calibrate on the calibration split.
LITERT_RECIPES = (
    "weight_only_wi8_afp32", "weight_only_wi4_afp32", "dynamic_wi8_afp32",
    "dynamic_wi4_afp32", "dynamic_legacy_wi8_afp32", "static_wi8_ai8", "static_wi8_ai16",
    "dynamic_wi8c_afp32", "dynamic_wi4c_afp32", "dynamic_wi2c_afp32",
    "dynamic_wi8b32_afp32", "dynamic_wi4b32_afp32", "dynamic_wi2b32_afp32",
    "dynamic_wi8b64_afp32", "dynamic_wi4b64_afp32", "dynamic_wi2b64_afp32",
    "dynamic_wi8c_hr_afp32", "dynamic_wi4c_hr_afp32", "dynamic_wi2c_hr_afp32",
)



@dataclass(frozen=True)
class LitertAlgorithm:
    """A litert-quantizer weight algorithm a recipe may choose (``litert_algorithm``):
    its key in ``algorithm_manager.AlgorithmName`` and the ops whose weights it
    quantizes; every other op keeps the litert recipe's min-max. ``calibrates``: it reads
    activations of the calibration split (GPTQ's Hessian)."""

    key: str
    ops: tuple[str, ...]
    calibrates: bool = False


_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# What litert-quantizer 0.11's algorithm_manager registers for each (read from the
# installed package; the backend checks the installed one still has them).
LITERT_ALGORITHMS: dict[str, LitertAlgorithm] = {
    "mse": LitertAlgorithm("MSE", _WEIGHT_OPS),
    "octav": LitertAlgorithm("OCTAV", _WEIGHT_OPS),
    "gptq": LitertAlgorithm("GPTQ", ("FULLY_CONNECTED",), calibrates=True),
}


def with_reference(cases: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(model, recipe) ``cases`` after each model's float reference, each once: what
    must be computed for their rows (every drop and ratio is against the reference)."""
    cases = list(cases)
    return list(dict.fromkeys([(model, REFERENCE) for model, _ in cases] + cases))


@dataclass(frozen=True)
class FineTune:
    """A short fine-tune on the training split (QAT and pruning)."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4

    def __post_init__(self) -> None:
        check_types(self, "finetune.")
        require(self.epochs >= 1, "finetune.epochs", "an integer >= 1", self.epochs)
        require(self.batch_size >= 1, "finetune.batch_size", "an integer >= 1", self.batch_size)
        require(self.learning_rate > 0, "finetune.learning_rate", "> 0", self.learning_rate)


@dataclass(frozen=True)
class Pruning:
    """Magnitude pruning with a ``PolynomialDecay`` schedule.

    ``begin``/``end`` are fractions of the fine-tune's steps: ending before the last step
    leaves steps in which the network (and its BatchNorm statistics) adapts to the final
    mask. ``frequency`` is in steps; tfmot's default of 100 would prune once or never on
    the small fixture datasets.
    """

    initial_sparsity: float = 0.5
    final_sparsity: float = 0.8
    begin: float = 0.0
    end: float = 0.6
    frequency: int = 10
    structure: Structure = "unstructured"
    # Small first/last layers carry much of the accuracy and little of the size.
    skip_first_and_last: bool = True
    # Re-estimate BatchNorm moving statistics on the training split after pruning: the
    # moving averages lag the pruned weights and can collapse inference accuracy.
    recalibrate_batchnorm: bool = True

    def __post_init__(self) -> None:
        check_types(self, "prune.")
        for name in ("initial_sparsity", "final_sparsity"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"prune.{name}", "a fraction in [0, 1)", value)
        require(
            self.initial_sparsity <= self.final_sparsity,
            "prune.initial_sparsity",
            "<= prune.final_sparsity",
            self.initial_sparsity,
        )
        require(0.0 <= self.begin < self.end <= 1.0, "prune.begin/end", "0 <= begin < end <= 1",
                (self.begin, self.end))
        require(self.frequency >= 1, "prune.frequency", "an integer >= 1", self.frequency)
        require(self.structure in get_args(Structure), "prune.structure",
                f"one of {get_args(Structure)}", self.structure)


@dataclass(frozen=True)
class ChannelPruning:
    """Structured pruning: remove whole output channels (Conv2D filters, Dense units)
    and rebuild a narrower dense model, which runs faster, not just compresses better.

    ``criterion`` ranks channels: ``"l1"`` by the L1 norm of the producing kernel,
    ``"bn_gamma"`` by the |gamma| of the BatchNorm layers on the channel (L1 where there
    is none). Layers joined by a residual ``Add`` keep the same channels; model outputs
    keep all theirs. ``multiple`` rounds kept widths up (SIMD-friendly widths).
    """

    fraction: float = 0.5
    # Measured on digits_dscnn, 50 % removed, before fine-tuning: BN gamma keeps 89 %
    # test accuracy, kernel L1 51 % (float 99 %).
    criterion: Criterion = "bn_gamma"
    # As for Pruning: small first/last layers carry much of the accuracy.
    skip_first_and_last: bool = True
    multiple: int = 8
    # The narrower model's BatchNorm statistics are those of the wide one: re-estimate.
    recalibrate_batchnorm: bool = True

    def __post_init__(self) -> None:
        check_types(self, "channel_prune.")
        require(0.0 <= self.fraction < 1.0, "channel_prune.fraction", "a fraction in [0, 1)",
                 self.fraction)
        require(self.criterion in get_args(Criterion), "channel_prune.criterion",
                f"one of {get_args(Criterion)}", self.criterion)
        require(self.multiple >= 1, "channel_prune.multiple", "an integer >= 1",
                self.multiple)


@dataclass(frozen=True)
class Clustering:
    """Weight clustering (tfmot's ``cluster_weights``): each clusterable kernel keeps
    ``number_of_clusters`` shared values, fine-tuned, then ``strip_clustering``.

    After pruning, clustering preserves the zeros (tfmot's ``preserve_sparsity``).
    """

    number_of_clusters: int = 16
    init: CentroidInit = "kmeans_plus_plus"

    def __post_init__(self) -> None:
        check_types(self, "cluster.")
        require(self.number_of_clusters >= 2,
                "cluster.number_of_clusters", "an integer >= 2", self.number_of_clusters)
        require(self.init in get_args(CentroidInit), "cluster.init",
                f"one of {get_args(CentroidInit)}", self.init)


@dataclass(frozen=True)
class Promise:
    """What a recipe promises; the gate's absolute checks read it.

    Ratios are float-reference size over recipe size (higher is smaller). ``None`` means
    "no promise". Models may override any field (see ``ModelSpec.promises``).
    """

    max_drop_pts: float = 2.0
    min_size_ratio: float | None = None
    min_gzip_ratio: float | None = None
    # Require the recipe to be significantly faster than float at one thread.
    faster_than_float: bool = False
    # dtypes the converted model's input and output must have ("float32", "int8", ...).
    io_dtype: str | None = None
    # Full-integer recipes: every op must compute in integers (no float tensors but at
    # the QUANTIZE/DEQUANTIZE boundary).
    integer_only: bool = False
    # Oldest TFLite runtime the converted model must load on ("2.14"): every op version
    # in the flatbuffer must be in TensorFlow's runtime table at or below it.
    min_runtime: str | None = None
    # Runtimes besides LiteRT the file must run on ("tflm": TensorFlow Lite Micro);
    # None: the recipe's default (see ``declared_targets``).
    targets: tuple[str, ...] | None = None
    # TFLM: the tensor arena the model may need at most, in KiB (None: no budget).
    max_arena_kib: float | None = None
    # TFLM outputs against LiteRT's reference kernels: the largest difference allowed, in
    # output quanta (None: DEFAULT_TFLM_QUANTA).
    max_tflm_quanta: int | None = None
    # LiteRT with XNNPACK against its reference kernels: top-1 agreement on the test
    # split (None: reported, not judged).
    min_kernel_agreement: float | None = None
    # Clustered recipes: at most this many distinct values per output channel of every
    # weight tensor in the ``.tflite`` (a clustering that got lost fails).
    max_clusters: int | None = None

    def __post_init__(self) -> None:
        check_types(self, "promise.")
        require(self.max_clusters is None or self.max_clusters >= 1,
                "promise.max_clusters", "an integer >= 1 or none", self.max_clusters)
        if self.min_runtime is not None:
            from compressgate.compat.runtime_versions import parse_version

            parse_version(self.min_runtime, where="recipe field promise.min_runtime")
        if self.targets is not None:
            ok = isinstance(self.targets, list | tuple) and all(
                t in TARGETS for t in self.targets)
            require(ok, "promise.targets", f"a list of {TARGETS}", self.targets)
            object.__setattr__(self, "targets", tuple(self.targets))
        for name, low, high in (("max_arena_kib", 0, math.inf), ("max_tflm_quanta", 0, math.inf),
                                ("min_kernel_agreement", 0, 1)):
            value = getattr(self, name)
            ok = value is None or (isinstance(value, int | float)
                                   and not isinstance(value, bool) and low <= value <= high)
            require(ok, f"promise.{name}", f"a number in [{low}, {high}]", value)


@dataclass(frozen=True)
class Candidate:
    """A ``.tflite`` made by another pipeline (litert-torch, Keras 3's export, a team's
    own script), gated like a recipe's file: an existing ``file``, or a ``build`` command
    that writes ``{out}``. Paths and the command's working directory are the config
    file's directory."""

    file: str | None = None
    build: str | None = None
    # Files the build command reads: their bytes enter the cache key with its text.
    inputs: tuple[str, ...] = ()
    timeout: float = 600.0
    # The config file's directory (set by the config loader; not in the cache key).
    root: str = ""

    def __post_init__(self) -> None:
        check_types(self, "candidate.")
        require((self.file is None) != (self.build is None), "candidate",
                "exactly one of file or build", {"file": self.file, "build": self.build})
        require(self.build is None or "{out}" in self.build, "candidate.build",
                "a command containing {out} (the file it writes)", self.build)
        require(self.timeout > 0, "candidate.timeout", "a number of seconds > 0",
                self.timeout)
        require(isinstance(self.inputs, list | tuple) and all(
            isinstance(i, str) for i in self.inputs), "candidate.inputs",
            "a list of file paths", self.inputs)
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True)
class Recipe:
    """One way of compressing a float Keras model into a ``.tflite`` file."""

    name: str
    description: str = ""
    quantization: Quantization = "none"
    qat: bool = False
    prune: Pruning | None = None
    # Structured channel pruning (before QAT when both are set).
    channel_prune: ChannelPruning | None = None
    finetune: FineTune = field(default_factory=FineTune)
    # Converter optimizations; switching them off is how a "skipped optimization" looks.
    optimize: bool = True
    calibration_samples: int = 200
    # 1.0 = the calibration split as is. Anything else plants a calibration fault
    # (0.0 = all zeros); used to prove the gate catches bad calibration.
    calibration_scale: float = 1.0
    # Invokes per measured inference; >1 simulates a slower kernel (a latency fault):
    # 1.3 runs 30 % more invokes than it counts (the same file, slower "kernels").
    repeat_invoke: float = 1
    # TEST KNOB: the recipe/float ratio falls into one of two modes per process, this
    # much slower in about half of them (``measure.processes.process_slowdown``).
    process_slowdown: float | None = None
    # Full-integer recipes: keep float32 model inputs and outputs (QUANTIZE/DEQUANTIZE at
    # the edges) for callers that feed floats; the promise's io_dtype says what is owed.
    float_io: bool | None = None
    # Gaussian noise (this fraction of each weight tensor's standard deviation) added to
    # the model's weights before conversion: plants perturbed weights (a fault).
    perturb_weights: float | None = None
    promise: Promise = field(default_factory=Promise)
    # Mixed precision (int8 recipes): Keras layers kept float, or "auto" to keep the
    # worst layers of the quantization diagnosis float until the drop fits the promise.
    keep_float: KeepFloat = None
    # Weight clustering (after pruning, before QAT), and what QAT preserves.
    cluster: Clustering | None = None
    qat_preserve: QatPreserve | None = None
    # QAT recipes: "calibrated" unless set; None for recipes without QAT.
    qat_start: QatStart | None = None
    # Quantize with litert-quantizer's recipe of this name (LITERT_RECIPES) instead of
    # the TF converter: the float .tflite (the float recipe's file) is its input.
    litert_recipe: str | None = None
    # With ``litert_recipe``: the weight algorithm (LITERT_ALGORITHMS) for the ops it
    # covers, instead of min-max; None: the litert recipe as it is.
    litert_algorithm: str | None = None
    # A file made elsewhere, gated as this recipe's (``quantization`` is what it is
    # declared to be); see ``Candidate``.
    candidate: Candidate | None = None
    # Full-integer recipes: one weight scale per tensor instead of per output channel
    # (the converter's ``_experimental_disable_per_channel``), as older int8 hardware
    # and the DFQ paper's per-tensor results have it.
    per_tensor: bool = False
    # Data-free quantization before conversion (``DataFree``).
    dfq: DataFree | None = None

    def __post_init__(self) -> None:
        check_types(self, "")
        _check_keep_float(self)
        check_dfq(self)
        _check_litert(self)
        _check_collaborative(self)
        _check_qat_start(self)
        require(bool(self.name) and self.name.replace("_", "").isalnum(), "name",
                "letters, digits and underscores", self.name)
        require(self.quantization in get_args(Quantization), f"{self.name}: quantization",
                f"one of {get_args(Quantization)}", self.quantization)
        require(not self.qat or self.quantization == "int8", f"{self.name}: qat",
                "quantization='int8' (QAT converts to full integer)", self.quantization)
        require(self.calibration_samples >= 1, f"{self.name}: calibration_samples",
                "an integer >= 1", self.calibration_samples)
        require(self.repeat_invoke >= 1, f"{self.name}: repeat_invoke", "a number >= 1",
                self.repeat_invoke)
        require(self.process_slowdown is None or self.process_slowdown >= 1,
                f"{self.name}: process_slowdown", "a number >= 1", self.process_slowdown)
        require(self.perturb_weights is None or self.perturb_weights >= 0,
                f"{self.name}: perturb_weights", "a number >= 0", self.perturb_weights)

    @property
    def needs_finetune(self) -> bool:
        return (self.qat or self.prune is not None or self.channel_prune is not None
                or self.cluster is not None)

    @property
    def is_reference(self) -> bool:
        return self.name == REFERENCE

    @property
    def needs_keras(self) -> bool:
        """Whether the recipe needs the Keras model (TF converter, QAT, pruning), not
        just a float ``.tflite``."""
        return not self.is_reference and self.litert_recipe is None and self.candidate is None

    @property
    def is_int8_ptq(self) -> bool:
        """Calibrated full-integer PTQ (int8, no QAT, no pruning): what TFLite's
        quantization debugger can explain layer by layer."""
        return (self.quantization == "int8" and not self.qat and self.prune is None
                and self.litert_recipe is None and self.channel_prune is None
                and self.cluster is None and self.candidate is None
                and self.dfq is None and not self.per_tensor)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not data["per_tensor"]:  # added later: old cache keys stay valid
            del data["per_tensor"]
        for name in _OMIT_WHEN_NONE:  # fields added later: old cache keys stay valid
            if data[name] is None:
                del data[name]
        for outer, names in _NESTED_OMIT_WHEN_NONE.items():
            for name in names:
                if data[outer].get(name, 0) is None:
                    del data[outer][name]
        return data

    def settings(self) -> dict[str, Any]:
        """``to_dict`` without the target promises: what determines the file's bytes."""
        data = self.to_dict()
        data["promise"] = {k: v for k, v in data["promise"].items() if k not in TARGET_PROMISES}
        if "candidate" in data:  # where the config lives changes no byte
            data["candidate"] = {k: v for k, v in data["candidate"].items() if k != "root"}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "recipe") -> Recipe:
        """Build a recipe from plain data, naming any unknown or ill-typed field."""
        return from_dict(cls, data, where, _NESTED if cls is Recipe else None)

    def with_overrides(self, overrides: dict[str, Any], *, where: str = "recipe") -> Recipe:
        """A copy with (nested) fields replaced, validated like ``from_dict``."""
        return from_dict(Recipe, deep_merge(self.to_dict(), overrides), where, _NESTED)


_OMIT_WHEN_NONE = ("keep_float", "perturb_weights", "float_io", "litert_recipe",
                   "channel_prune", "cluster", "qat_preserve", "candidate",
                   "process_slowdown", "qat_start", "dfq", "litert_algorithm")
# Promise fields that judge where a file runs, not what it is: they change no byte, so
# they are left out of cache keys and recorded recipe digests.
# TFLM against LiteRT's reference kernels, when the promise says nothing: one output
# quantum, one requantization's rounding. Measured: bit-exact on the digits CNNs, 1
# quantum on tabular_mlp (FULLY_CONNECTED + SOFTMAX) and on a QAT Conv1D regressor's
# output; more is a real difference (seq_rnn's LSTM: 9-11, declared with its reason).
DEFAULT_TFLM_QUANTA = 1

TARGET_PROMISES = ("targets", "max_arena_kib", "max_tflm_quanta", "min_kernel_agreement")
# Nested fields added later, dropped when None so old cache keys stay valid.
_NESTED_OMIT_WHEN_NONE = {"promise": ("max_clusters", *TARGET_PROMISES)}


def declared_targets(recipe: Recipe) -> tuple[str, ...]:
    """The runtimes besides LiteRT a recipe's file must run on.

    By default full-integer recipes promise TFLM: integer kernels are what
    microcontrollers run (TFLM's optimized kernels, CMSIS-NN among them, are int8), TFLM
    refuses dynamic-range ("hybrid") models, and a float model that happens to load there
    is not what anyone ships to one. Float recipes still show whether they load.
    """
    if recipe.promise.targets is not None:
        return recipe.promise.targets
    return ("tflm",) if recipe.promise.integer_only else ()


_NESTED: dict[str, type] = {"prune": Pruning, "finetune": FineTune, "promise": Promise,
                            "channel_prune": ChannelPruning, "cluster": Clustering,
                            "candidate": Candidate, "dfq": DataFree}


def _check_keep_float(recipe: Recipe) -> None:
    """Normalize ``keep_float`` to a tuple of names (JSON gives lists); a recipe that keeps
    layers float promises float ops, so its ``integer_only`` promise cannot hold."""
    value = recipe.keep_float
    if value is None:
        return
    where = f"{recipe.name}: keep_float"
    if value != "auto":
        ok = isinstance(value, list | tuple) and bool(value) and all(
            isinstance(v, str) and v for v in value)
        require(ok, where, '"auto" or a non-empty list of Keras layer names', value)
        object.__setattr__(recipe, "keep_float", tuple(value))
    require(recipe.quantization == "int8" and recipe.prune is None, where,
            "an int8 PTQ or QAT recipe (quantization='int8', no pruning)",
            (recipe.quantization, "pruned" if recipe.prune else "not pruned"))
    require(not (recipe.qat and value == "auto"), where,
            "a list of layer names for QAT (auto needs a PTQ diagnosis)", value)
    if recipe.promise.integer_only:
        object.__setattr__(recipe, "promise",
                           dataclasses.replace(recipe.promise, integer_only=False))


def _check_qat_start(recipe: Recipe) -> None:
    """A QAT recipe's ``qat_start`` is always set (so it enters the recipe's digest:
    the bytes depend on it); a recipe without QAT has none."""
    start = recipe.qat_start
    require(start is None or start in get_args(QatStart), f"{recipe.name}: qat_start",
            f"one of {get_args(QatStart)}", start)
    if not recipe.qat:  # an override that turned QAT off leaves nothing to start
        object.__setattr__(recipe, "qat_start", None)
    elif start is None:
        object.__setattr__(recipe, "qat_start", "calibrated")


def _check_collaborative(recipe: Recipe) -> None:
    """Clustering and preserving QAT need the stages they build on."""
    where = f"{recipe.name}: qat_preserve"
    preserve = recipe.qat_preserve
    if preserve is not None:
        require(preserve in get_args(QatPreserve), where, f"one of {get_args(QatPreserve)}",
                preserve)
        require(recipe.qat, where, "qat=true (it chooses the QAT scheme)", recipe.qat)
        require(preserve != "sparsity" or recipe.prune is not None, where,
                "a prune stage to preserve (prune = {...})", preserve)
        require(preserve != "clusters" or recipe.cluster is not None, where,
                "a cluster stage to preserve (cluster = {...})", preserve)
    if recipe.cluster is not None or preserve is not None:
        require(recipe.keep_float is None, f"{recipe.name}: keep_float",
                "none in a clustered or preserving-QAT recipe", recipe.keep_float)
        require(recipe.litert_recipe is None, f"{recipe.name}: litert_recipe",
                "none in a clustered or preserving-QAT recipe (it needs the Keras model)",
                recipe.litert_recipe)


def _check_litert(recipe: Recipe) -> None:
    """A litert-quantizer recipe names one of its recipes and does nothing the TF
    converter does (its input is the float ``.tflite``)."""
    algorithm = recipe.litert_algorithm
    if algorithm is not None:
        require(algorithm in LITERT_ALGORITHMS, f"{recipe.name}: litert_algorithm",
                f"one of {', '.join(LITERT_ALGORITHMS)}", algorithm)
        require(recipe.litert_recipe is not None, f"{recipe.name}: litert_algorithm",
                "a litert_recipe to apply it in (litert-quantizer runs it)", algorithm)
    if recipe.litert_recipe is None:
        return
    require(recipe.litert_recipe in LITERT_RECIPES, f"{recipe.name}: litert_recipe",
            f"one of {', '.join(LITERT_RECIPES)}", recipe.litert_recipe)
    require(recipe.quantization == "none" and not recipe.qat and recipe.prune is None
            and recipe.keep_float is None and recipe.channel_prune is None,
            f"{recipe.name}: litert_recipe", "no quantization, qat, prune, channel_prune or "
            "keep_float (litert-quantizer quantizes the float .tflite itself)",
            recipe.litert_recipe)

