"""Delegate coverage: which nodes of a ``.tflite`` XNNPACK took, and which run on LiteRT's
built-in kernels, counted by op name, as the gate's own interpreter planned them.

LiteRT's Python API does not expose the execution plan after delegation. It does list
every node: the file's ops in file order, then one ``DELEGATE`` node per partition that
XNNPACK replaced, whose inputs and outputs are the partition's boundary tensors. A
partition's nodes are exactly those reached walking back from its outputs through the
producing nodes until its inputs (a tensor made inside the partition is never one of
its inputs); every other op runs on the built-in kernels. Checked against LiteRT's own
one-node-per-partition mode (``experimental_disable_delegate_node_fusion``) on every
bundled baseline file: the same counts (tests/unit/test_delegate_coverage.py).

Only the main subgraph's nodes are exposed to Python: ops in other subgraphs (bodies of
WHILE, IF) are not counted, and ``subgraphs`` says there are some.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from compressgate.measure.litert import interpreter

DELEGATE_OP = "DELEGATE"


def _counts(names: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(names).items()))


@dataclass(frozen=True)
class DelegateCoverage:
    """Ops of the main subgraph by where they run: ``delegated`` (XNNPACK) and ``builtin``
    (LiteRT's built-in kernels), as {op name: count}."""

    delegated: dict[str, int] = field(default_factory=dict)
    builtin: dict[str, int] = field(default_factory=dict)
    # DELEGATE nodes: how many separate XNNPACK partitions the graph was cut into.
    partitions: int = 0
    # Subgraphs in the file; ops beyond the first are not counted (see the module doc).
    subgraphs: int = 1
    # The indices of the main subgraph's ops left to the built-in kernels.
    builtin_nodes: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.delegated.values()) + sum(self.builtin.values())

    @property
    def off(self) -> int:
        """How many ops run on the built-in kernels."""
        return sum(self.builtin.values())

    @property
    def all_delegated(self) -> bool:
        return not self.builtin

    def describe(self) -> str:
        """One line: how many ops XNNPACK took, and which it left to the built-in kernels."""
        text = f"XNNPACK {self.total - self.off} of {self.total} ops"
        if self.builtin:
            text += "; built-in kernels: " + ", ".join(
                f"{op} {n}" for op, n in self.builtin.items())
        else:
            text += " (all)"
        if self.subgraphs > 1:
            text += f"; {self.subgraphs - 1} other subgraph(s) not counted"
        return text

    def newly_off(self, accepted: DelegateCoverage) -> list[tuple[str, int, int]]:
        """(op, accepted count, this count) for every op this file leaves to the built-in
        kernels more often than ``accepted`` does, by op name."""
        return [(op, accepted.builtin.get(op, 0), n) for op, n in self.builtin.items()
                if n > accepted.builtin.get(op, 0)]

    def to_dict(self) -> dict[str, Any]:
        return {"xnnpack_ops": dict(self.delegated), "builtin_ops": dict(self.builtin),
                "delegate_partitions": self.partitions, "subgraphs": self.subgraphs,
                "builtin_nodes": list(self.builtin_nodes)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DelegateCoverage | None:
        """From ``to_dict``'s keys (in a flat row too); None when they are absent."""
        if "xnnpack_ops" not in doc or "builtin_ops" not in doc:
            return None
        return cls(dict(doc["xnnpack_ops"]), dict(doc["builtin_ops"]),
                   int(doc.get("delegate_partitions", 0)), int(doc.get("subgraphs", 1)),
                   tuple(doc.get("builtin_nodes") or ()))


def of_nodes(nodes: list[dict[str, Any]], subgraphs: int = 1) -> DelegateCoverage:
    """Coverage from ``Interpreter._get_ops_details()`` of an allocated interpreter (dicts
    with ``index``, ``op_name``, ``inputs``, ``outputs``)."""
    ops = [n for n in nodes if n["op_name"] != DELEGATE_OP]
    delegates = [n for n in nodes if n["op_name"] == DELEGATE_OP]
    producer = {int(t): int(n["index"]) for n in ops for t in n["outputs"]}
    by_index = {int(n["index"]): n for n in ops}
    taken: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producer:
                continue
            index = producer[tensor]
            if index in taken:
                continue
            taken.add(index)
            stack.extend(int(t) for t in by_index[index]["inputs"] if int(t) >= 0)
    return DelegateCoverage(
        delegated=_counts([n["op_name"] for n in ops if int(n["index"]) in taken]),
        builtin=_counts([n["op_name"] for n in ops if int(n["index"]) not in taken]),
        partitions=len(delegates), subgraphs=subgraphs,
        builtin_nodes=tuple(int(n["index"]) for n in ops if int(n["index"]) not in taken))


def of_interpreter(interp: Any) -> DelegateCoverage:
    """Coverage of an allocated LiteRT interpreter (delegates are applied on allocation)."""
    return of_nodes(interp._get_ops_details(), interp.num_subgraphs())


def of_file(tflite: bytes, *, name: str = "model") -> DelegateCoverage:
    """Coverage of ``tflite`` in the interpreter the gate measures with (XNNPACK on)."""
    return of_interpreter(interpreter(tflite, name=name))
