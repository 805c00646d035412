"""Regenerate ``compressgate/compat/runtime_table.py`` from TensorFlow's ``runtime_version.cc``.

    python scripts/gen_runtime_table.py path/to/runtime_version.cc \
        --source google-ai-edge/LiteRT:tflite/converter/tools/versioning/runtime_version.cc \
        --commit <the commit it was read at>

Only the map in ``FindMinimumRuntimeVersionForOp`` is copied; nothing is added by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compressgate.compat.runtime_versions import parse_runtime_version_cc

OUT = Path(__file__).resolve().parent.parent / "compressgate" / "compat" / "runtime_table.py"


def render(table: dict[tuple[str, int], str], source: str, commit: str) -> str:
    lines = [
        '"""TensorFlow Lite (op, op version) -> minimum runtime version. GENERATED, do not edit.',
        "",
        f"Source: {source}",
        f"at commit {commit}, the map in FindMinimumRuntimeVersionForOp.",
        "Regenerate with scripts/gen_runtime_table.py.",
        '"""',
        "",
        f"SOURCE = {source!r}",
        f"COMMIT = {commit!r}",
        "",
        "MIN_RUNTIME: dict[tuple[str, int], str] = {",
    ]
    lines += [f"    ({op!r}, {version}): {runtime!r}," for (op, version), runtime
              in sorted(table.items())]
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cc", type=Path)
    parser.add_argument("--source", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    table = parse_runtime_version_cc(args.cc.read_text())
    args.out.write_text(render(table, args.source, args.commit))
    print(f"{args.out}: {len(table)} entries")


if __name__ == "__main__":
    main()
