"""The import graph of the ``compressgate`` package, and the layout rules it must keep.

Every ``import`` / ``from ... import`` statement counts, at module level and inside
functions alike (a lazy import is still a dependency). Prints the module and edge counts,
the strongly connected components with more than one module (import cycles), and the
modules that import TensorFlow, tf-keras or tfmot; exits 1 when there is a cycle or when
any module but ``compressgate.backends.tf.env`` imports TensorFlow.

    python scripts/import_graph.py [--package DIR] [--edges]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

TENSORFLOW = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")
# The one module allowed to import TensorFlow (the backend's environment).
TF_MODULE = "compressgate.backends.tf.env"


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(node: ast.AST, here: str, is_package: bool) -> list[str]:
    """The dotted names an import statement brings in (``from a import b`` gives
    ``a.b`` and ``a``; the caller keeps the ones that are modules)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = here.split(".") if is_package else here.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def graph(package: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between the package's modules, third-party top-level names per module)."""
    mods = modules(package)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    external: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = _imported(node, name, path.name == "__init__.py")
            if not names:
                continue
            if isinstance(node, ast.ImportFrom):
                base, *members = names
                # ``from pkg import name`` runs ``pkg`` (and ``pkg.name`` when it is a
                # module): an edge to each.
                targets = [m for m in members if m in mods] + ([base] if base in mods else [])
            else:
                targets = [n for n in names if n in mods]
            edges[name].update(t for t in targets if t != name)
            external[name].update(n.split(".")[0] for n in names[:1]
                                  if n.split(".")[0] != package.name)
    return edges, external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path,
                        default=Path(__file__).resolve().parent.parent / "compressgate")
    parser.add_argument("--edges", action="store_true", help="list every edge")
    args = parser.parse_args(argv)
    edges, external = graph(args.package)
    loops = cycles(edges)
    tf_users = sorted(m for m, names in external.items() if names & set(TENSORFLOW))
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} edges, "
          f"{len(loops)} cycles")
    for loop in loops:
        print("  cycle: " + " <-> ".join(loop))
    print("import TensorFlow: " + (", ".join(tf_users) or "none"))
    if args.edges:
        for name in sorted(edges):
            for target in sorted(edges[name]):
                print(f"  {name} -> {target}")
    return 1 if loops or tf_users not in ([], [TF_MODULE]) else 0


if __name__ == "__main__":
    sys.exit(main())
