"""The settings of a recipe's fine-tune stages: the fine-tune itself (``FineTune``, with
``Distill``), and what it trains toward (``Pruning``, ``ChannelPruning``, ``Clustering``,
``LowRank``). ``Recipe`` (``schema``) nests them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from compressgate.recipes.validation import check_types, from_dict, require

Structure = Literal["unstructured", "2by4"]
Criterion = Literal["l1", "bn_gamma"]
CentroidInit = Literal["kmeans_plus_plus", "linear", "density_based", "random"]


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation from the float model (the teacher) during a fine-tune.

    The loss is ``(1 - alpha) * label_loss + alpha * T^2 * KL(softmax(t / T) ||
    softmax(s / T))`` over teacher and student logits ``t``, ``s`` (Hinton et al. 2015:
    the T^2 keeps the soft term's gradients the size of the label term's). ``alpha = 0``
    is the plain fine-tune's label loss.
    """

    temperature: float = 4.0
    alpha: float = 0.7

    def __post_init__(self) -> None:
        check_types(self, "finetune.distill.")
        require(self.temperature > 0, "finetune.distill.temperature", "a number > 0",
                self.temperature)
        require(0.0 <= self.alpha <= 1.0, "finetune.distill.alpha", "a number in [0, 1]",
                self.alpha)


@dataclass(frozen=True)
class FineTune:
    """A short fine-tune on the training split (QAT and pruning), on the labels or, with
    ``distill``, on the labels and the float model's outputs."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    distill: Distill | None = None

    def __post_init__(self) -> None:
        check_types(self, "finetune.")
        require(self.epochs >= 1, "finetune.epochs", "an integer >= 1", self.epochs)
        require(self.batch_size >= 1, "finetune.batch_size", "an integer >= 1", self.batch_size)
        require(self.learning_rate > 0, "finetune.learning_rate", "> 0", self.learning_rate)
        if isinstance(self.distill, dict):  # a table in a config (nested one level down)
            object.__setattr__(self, "distill", from_dict(
                Distill, self.distill, "recipe field finetune.distill"))
        require(self.distill is None or isinstance(self.distill, Distill), "finetune.distill",
                "a table {temperature, alpha} or none", self.distill)


@dataclass(frozen=True)
class LowRank:
    """Low-rank factorization: each Dense kernel (and 1x1 Conv2D kernel) ``W`` (m x n)
    becomes two layers of rank r, ``(U_r S_r^1/2)(S_r^1/2 V_r^T)`` from its SVD.

    r is the smallest rank keeping ``energy`` of the sum of squared singular values or,
    when ``budget`` is set (it then decides instead), the largest whose r * (m + n)
    parameters are at most ``budget`` of the layer's m * n. A layer whose factors would
    not be smaller than its kernel stays whole (``compressgate.backends.lowrank``).
    """

    energy: float = 0.9
    budget: float | None = None
    # Layers producing a model output stay whole: the head decides the classes from few
    # units, so factorizing it saves little and costs accuracy first.
    skip_output: bool = True

    def __post_init__(self) -> None:
        check_types(self, "lowrank.")
        require(0.0 < self.energy <= 1.0, "lowrank.energy", "a fraction in (0, 1]",
                self.energy)
        require(self.budget is None or 0.0 < self.budget < 1.0, "lowrank.budget",
                "a fraction in (0, 1)", self.budget)


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
