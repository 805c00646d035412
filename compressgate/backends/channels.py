"""Which channels structured (channel) pruning keeps: numpy only, no TensorFlow.

A model is described as a list of :class:`Node` (one per layer, in topological order).
Every tensor's last axis belongs to a *channel space*: the output channels of the layer
that created it (a Conv2D's filters, a Dense layer's units), carried unchanged through
channel-wise layers (depthwise convolution, BatchNorm, activations, pooling) and merged
by ``Add``: all layers whose channels meet in an ``Add`` must keep the same channels, so
they form one space and are pruned together. A space is left whole when it reaches a
model output or the model input, or meets a layer this module does not know (the first
such reason is reported). ``Flatten`` keeps the space but spreads each channel over the
spatial positions, so the next Dense layer drops the matching rows.

The backend turns the returned :class:`Plan` into a narrower model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

# producer: makes a new space (Conv2D, Dense); channelwise: slices its per-channel
# weights by its input's space (DepthwiseConv2D, BatchNormalization); passthrough: no
# weights, channels unchanged; add: merges its inputs' spaces; flatten: see the module
# docstring; input: the model input; other: anything else (blocks its spaces).
Kind = Literal["producer", "channelwise", "passthrough", "add", "flatten", "input", "other"]


@dataclass(frozen=True)
class Node:
    """One layer as channel pruning sees it."""

    name: str
    kind: Kind
    inputs: tuple[str, ...] = ()
    # Output channels (producers) or, for flatten, the spatial positions per channel.
    channels: int = 0
    is_output: bool = False
    # Why the layer blocks pruning (kind "other"), for the refusal message.
    why: str = ""


@dataclass(frozen=True)
class Plan:
    """Kept channel indices: ``out_keep[layer]`` for producers whose outputs shrink,
    ``in_keep[layer]`` for any layer whose input (last axis) shrinks."""

    out_keep: dict[str, np.ndarray] = field(default_factory=dict)
    in_keep: dict[str, np.ndarray] = field(default_factory=dict)
    # Spaces left whole, keyed by their first producer, with the reason.
    left_whole: dict[str, str] = field(default_factory=dict)


class _Spaces:
    """Union-find over producers: a space is a set of producers pruned identically."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.blocked: dict[str, str] = {}

    def add(self, name: str) -> str:
        self.parent.setdefault(name, name)
        return name

    def root(self, name: str) -> str:
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> str:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.blocked:
                self.blocked.setdefault(ra, self.blocked.pop(rb))
        return ra

    def block(self, name: str, why: str) -> None:
        self.blocked.setdefault(self.root(name), why)


@dataclass(frozen=True)
class _Tensor:
    space: str
    positions: int = 1  # > 1 after Flatten: channel c sits at p * C + c


def trace(nodes: Sequence[Node]) -> tuple[_Spaces, dict[str, _Tensor]]:
    """Assign every layer's output to a channel space; block the spaces that must stay."""
    spaces = _Spaces()
    out: dict[str, _Tensor] = {}
    for node in nodes:
        ins = [out[i] for i in node.inputs]
        if node.kind in ("producer", "input", "other"):
            out[node.name] = _Tensor(spaces.add(node.name))
            if node.kind == "input":
                spaces.block(node.name, f"'{node.name}' is the model input")
            elif node.kind == "other":
                spaces.block(node.name, node.why or f"'{node.name}' is not supported")
                for t in ins:
                    spaces.block(t.space, node.why or f"'{node.name}' is not supported")
        elif node.kind == "add":
            root = ins[0].space
            for t in ins[1:]:
                root = spaces.union(root, t.space)
                if t.positions != ins[0].positions:
                    spaces.block(root, f"'{node.name}' adds tensors of different layouts")
            out[node.name] = _Tensor(root, ins[0].positions)
        elif node.kind == "flatten":
            t = ins[0]
            out[node.name] = _Tensor(t.space, t.positions * max(1, node.channels))
        else:  # channelwise, passthrough
            out[node.name] = ins[0]
        if node.is_output:
            spaces.block(out[node.name].space, f"'{node.name}' is a model output")
    return spaces, out


def keep_count(channels: int, fraction: float, multiple: int = 1) -> int:
    """Channels kept when ``fraction`` of ``channels`` are removed: at least one, rounded
    up to a multiple of ``multiple`` (never above ``channels``)."""
    kept = max(1, round(channels * (1.0 - fraction)))
    kept = -(-kept // multiple) * multiple
    return min(channels, kept)


def l1_scores(kernel: np.ndarray) -> np.ndarray:
    """L1 norm of each output channel (last axis) of a kernel."""
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def top_channels(scores: Sequence[np.ndarray], kept: int) -> np.ndarray:
    """Sorted indices of the ``kept`` highest channels, summing the members' scores each
    divided by its mean (so a large layer does not outvote a small one). Ties go to the
    lower index, so the choice is deterministic."""
    total = np.zeros_like(np.asarray(scores[0], dtype=np.float64))
    for s in scores:
        s = np.asarray(s, dtype=np.float64)
        total += s / (s.mean() if s.mean() > 0 else 1.0)
    order = np.lexsort((np.arange(len(total)), -total))
    return np.sort(order[:kept])


def _expand(keep: np.ndarray, channels: int, positions: int) -> np.ndarray:
    """Flattened indices of the kept channels at every position."""
    return (np.arange(positions)[:, None] * channels + keep[None, :]).reshape(-1)


def plan(nodes: Sequence[Node], scores: Mapping[str, np.ndarray], fraction: float, *,
         fallback: Mapping[str, np.ndarray] | None = None, skip_first_and_last: bool = True,
         multiple: int = 1) -> Plan:
    """Which channels survive: ``scores[name]`` ranks a layer's channels (a producer's
    output channels, or a channelwise layer's, e.g. BatchNorm's gamma); every layer of a
    space contributes the scores it has, and a space none of whose layers has one is
    ranked by ``fallback`` (then left in order). ``skip_first_and_last`` leaves the first
    and the last prunable space (in graph order) whole."""
    spaces, tensors = trace(nodes)
    by_name = {n.name: n for n in nodes}
    members: dict[str, list[str]] = {}
    for node in nodes:
        if node.kind in ("producer", "channelwise"):
            root = spaces.root(tensors[node.name].space)
            members.setdefault(root, []).append(node.name)
    first_producer = {root: next(m for m in ms if by_name[m].kind == "producer")
                      for root, ms in members.items()
                      if any(by_name[m].kind == "producer" for m in ms)}
    prunable = [r for r in first_producer if r not in spaces.blocked]
    left_whole = {first_producer[r]: spaces.blocked[r]
                  for r in first_producer if r in spaces.blocked}
    if skip_first_and_last and len(prunable) > 2:
        for r in (prunable[0], prunable[-1]):
            left_whole[first_producer[r]] = "first or last prunable layer (skip_first_and_last)"
        prunable = prunable[1:-1]
    keep: dict[str, np.ndarray] = {}
    for root in prunable:
        channels = by_name[first_producer[root]].channels
        ranked = ([scores[m] for m in members[root] if m in scores]
                  or [fallback[m] for m in members[root] if m in (fallback or {})]
                  or [np.ones(channels)])
        kept = keep_count(channels, fraction, multiple)
        if kept < channels:
            keep[root] = top_channels(ranked, kept)
        else:
            left_whole[first_producer[root]] = (
                f"{channels} channels less {fraction:.0%} rounds back to {kept}")
    result = Plan(left_whole=left_whole)
    for node in nodes:
        if node.kind == "producer" and spaces.root(node.name) in keep:
            result.out_keep[node.name] = keep[spaces.root(node.name)]
        if node.kind in ("producer", "channelwise") and node.inputs:
            t = tensors[node.inputs[0]]
            root = spaces.root(t.space)
            if root in keep:
                channels = by_name[first_producer[root]].channels
                result.in_keep[node.name] = _expand(keep[root], channels, t.positions)
    return result


def refusal(nodes: Sequence[Node], result: Plan) -> str | None:
    """One line saying why nothing could be pruned, or None when something was."""
    if result.out_keep:
        return None
    reasons = [f"{name}: {why}" for name, why in result.left_whole.items()]
    unsupported = [n.why for n in nodes if n.kind == "other" and n.why]
    reasons += [why for why in unsupported if not any(why in r for r in reasons)]
    if not result.left_whole:
        reasons.insert(0, "no Conv2D or Dense layer")
    return f"channel pruning: no layer can lose channels ({'; '.join(reasons)})"
