"""Why a quantized recipe lost accuracy: per-layer error, ranked, and the mixed-precision
search that keeps the worst layers float. Pure: no TensorFlow, no files.

Per-layer error comes from TFLite's ``QuantizationDebugger`` (the backend runs it): for
each quantized op output, the error against the float op run on the same inputs. The
figure ranked is RMSE / scale, the error in units of the tensor's quantization step:
plain rounding gives about 0.29 (sqrt(1/12)); clipping or crushed weights give far more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from compressgate.errors import UserInputError

# Error of an op whose output is quantized perfectly: uniform rounding noise.
ROUNDING_RMSE_OVER_SCALE = 1 / math.sqrt(12)
# Ops int8 computes exactly (pooling, reshape) show ~1e-6 steps: float cannot help them.
EXACT_RMSE_OVER_SCALE = 1e-3


@dataclass(frozen=True)
class TensorError:
    """The debugger's statistics for one quantized op output."""

    op: str
    tensor: str
    layer: str | None  # the Keras layer the tensor belongs to, when its name says so
    elements: int
    rmse: float
    scale: float
    max_abs_error: float

    @property
    def rmse_over_scale(self) -> float:
        return self.rmse / self.scale if self.scale > 0 else math.inf


@dataclass(frozen=True)
class LayerError:
    """A Keras layer's worst tensor error (or an unmapped tensor standing alone)."""

    name: str
    mapped: bool
    ops: tuple[str, ...]
    rmse_over_scale: float
    rmse: float
    max_abs_error: float


@dataclass(frozen=True)
class Step:
    """One evaluation of the mixed-precision search."""

    kept_float: tuple[str, ...]
    accuracy: float
    drop_pts: float
    size_bytes: int


@dataclass(frozen=True)
class Search:
    """The search's steps, first with nothing kept float; ``fits`` when the last one
    keeps the drop within the budget."""

    budget_pts: float
    float_accuracy: float
    steps: tuple[Step, ...]

    @property
    def fits(self) -> bool:
        return bool(self.steps) and self.steps[-1].drop_pts < self.budget_pts

    @property
    def chosen(self) -> Step:
        """The last step when it fits; otherwise the first, nothing kept float: layers
        kept float that do not bring the drop within budget cost size and fix nothing
        (a bad input range, for one, stays in the int8 input's scale)."""
        return self.steps[-1] if self.fits else self.steps[0]


def layers_in(tensor: str, layer_names: Sequence[str]) -> list[str]:
    """The Keras layers a converted tensor's name mentions, in the model's order.

    The converter names a tensor after the TF ops it fuses, ``model/conv2d_1/Conv2D``,
    joined with ``;`` (a Conv2D, its BatchNorm and its ReLU make one op). The first path
    segment is the model's name and is skipped.
    """
    mentioned = set()
    for part in tensor.split(";"):
        segments = part.split("/")
        mentioned.update(segments[1:] if len(segments) > 1 else segments)
    return [name for name in layer_names if name in mentioned]


def layer_of(tensor: str, layer_names: Sequence[str]) -> str | None:
    """The layer a tensor belongs to: the first one it mentions in the model's order,
    since fusion folds later layers (BatchNorm, activations) into the op before them."""
    found = layers_in(tensor, layer_names)
    return found[0] if found else None


def tensor_errors(rows: Iterable[dict[str, Any]], layer_names: Sequence[str]) -> list[TensorError]:
    """``QuantizationDebugger.layer_statistics_dump`` rows as typed records."""
    out = []
    for row in rows:
        out.append(TensorError(
            op=str(row["op_name"]), tensor=str(row["tensor_name"]),
            layer=layer_of(str(row["tensor_name"]), layer_names),
            elements=int(float(row["num_elements"])),
            rmse=math.sqrt(max(float(row["mean_squared_error"]), 0.0)),
            scale=float(row["scale"]), max_abs_error=float(row["max_abs_error"])))
    return out


def rank(tensors: Iterable[TensorError]) -> list[LayerError]:
    """Layers by their worst tensor's RMSE / scale, worst first; ties by name, so the
    order (and the search that follows it) is deterministic."""
    groups: dict[tuple[str, bool], list[TensorError]] = {}
    for t in tensors:
        groups.setdefault((t.layer or t.tensor, t.layer is not None), []).append(t)
    layers = []
    for (name, mapped), members in groups.items():
        worst = max(members, key=lambda t: t.rmse_over_scale)
        layers.append(LayerError(name, mapped, tuple(sorted({t.op for t in members})),
                                 worst.rmse_over_scale, worst.rmse,
                                 max(t.max_abs_error for t in members)))
    return sorted(layers, key=lambda e: (-e.rmse_over_scale, e.name))


def candidates(layers: Sequence[LayerError]) -> list[str]:
    """Layers worth keeping float, worst first: mapped to a Keras layer, not exact."""
    return [e.name for e in layers if e.mapped and e.rmse_over_scale > EXACT_RMSE_OVER_SCALE]


def offenders(layers: Sequence[LayerError], n: int = 3) -> str:
    """One line naming the worst layers, for the gate's failure message."""
    if not layers:
        return "no per-layer statistics"
    return ", ".join(f"{e.name} ({'/'.join(e.ops)}) RMSE/scale {e.rmse_over_scale:.3g}"
                     for e in layers[:n])


def resolve_keep_float(names: Sequence[str], layer_names: Sequence[str], *, model: str,
                       recipe: str) -> tuple[str, ...]:
    """``names`` checked against the model's layers, in the model's order."""
    unknown = [n for n in names if n not in layer_names]
    if unknown:
        raise UserInputError(
            f"model {model!r}, recipe {recipe}: keep_float names unknown layer {unknown[0]!r} "
            f"(the model's layers: {', '.join(layer_names)})")
    return tuple(n for n in layer_names if n in set(names))


def nodes_of(layers: Iterable[str], op_outputs: Iterable[tuple[str, Sequence[str]]],
             layer_names: Sequence[str]) -> list[str]:
    """Names of the op outputs that ``layers`` take part in (the converter's denylist
    keys): keeping a BatchNorm float keeps the convolution it is folded into float."""
    wanted = set(layers)
    return [name for _, outputs in op_outputs for name in outputs
            if wanted.intersection(layers_in(name, layer_names))]


def without_ops(layers: Iterable[str], op_outputs: Sequence[tuple[str, Sequence[str]]],
                layer_names: Sequence[str]) -> list[str]:
    """The ``layers`` that no op output mentions (removed, like Dropout, or unnamed)."""
    return [layer for layer in layers if not nodes_of([layer], op_outputs, layer_names)]


def search_keep_float(candidates: Sequence[str], evaluate: Callable[[tuple[str, ...]], Step],
                      *, budget_pts: float, float_accuracy: float) -> Search:
    """Keep candidates float one at a time, worst first, until the drop is within budget.

    ``evaluate`` converts and measures with the given layers kept float. The search stops
    at the first step that fits, or after trying every candidate.
    """
    kept: tuple[str, ...] = ()
    steps = [evaluate(kept)]
    for name in candidates:
        if steps[-1].drop_pts < budget_pts:
            break
        kept = (*kept, name)
        steps.append(evaluate(kept))
    return Search(budget_pts, float_accuracy, tuple(steps))


def step(kept: tuple[str, ...], accuracy: float, float_accuracy: float, size: int) -> Step:
    return Step(kept, accuracy, round((float_accuracy - accuracy) * 100, 4), size)

