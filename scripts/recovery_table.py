"""The recovery table of issue 24: recipes that bring back what int8 loses, run on the
MobileNetV2-style model with planted channel-range imbalance (``tests/mobilenet.py``),
against float and against ``ptq_int8``, as a markdown table.

    python scripts/recovery_table.py [--recipes ptq_int8_per_tensor,dfq_int8,...]
        [--dir /tmp/recovery] [--pairs 42]

The model is built (trained, seeded) into ``--dir`` and gated through its
``compressgate.toml`` like a user's model; results are cached there. Latency ratios are
timed in this process in interleaved pairs on one test row, one thread
(``Runner.latency`` against float, ``interleaved_latency`` against ``ptq_int8``).
Recipes added by later work go on the command line by name.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from compressgate.measure.litert import interleaved_latency
from compressgate.measure.machine import machine_class, this_machine
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = "ptq_int8_per_tensor,dfq_int8,dfq_int8_per_tensor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=DEFAULT, help="comma-separated recipe names")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/compressgate-recovery"))
    parser.add_argument("--pairs", type=int, default=42, help="latency pairs per ratio")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import mobilenet

    if not (args.dir / "compressgate.toml").exists():
        mobilenet.build(args.dir)
    runner = Runner(config.load(args.dir / "compressgate.toml").specs,
                    ResultCache(args.dir / "cache"))
    model = mobilenet.MODEL
    recipes = ["ptq_int8", *[r for r in args.recipes.split(",") if r and r != "ptq_int8"]]
    ptq, sample = runner.outcome(model, "ptq_int8"), runner.sample(model)
    print(f"machine class: {machine_class(this_machine())}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; one thread")
    print("| recipe | drop vs float (pts) | vs ptq_int8 (pts) | size (bytes) | size ratio "
          "| latency vs float | latency vs ptq_int8 |")
    print("|---|---|---|---|---|---|---|")
    ptq_drop = None
    for name in recipes:
        out = runner.outcome(model, name)
        if not out.converted:
            print(f"| {name} | not converted: {out.error} | | | | | |", flush=True)
            continue
        row = runner.row(model, name, runner.latency(model, name, pairs=args.pairs))
        ptq_drop = row.accuracy_drop_pts if name == "ptq_int8" else ptq_drop
        against = interleaved_latency(ptq.tflite, out.tflite, sample, pairs=args.pairs)
        versus = "-" if ptq_drop is None or name == "ptq_int8" else \
            f"{row.accuracy_drop_pts - ptq_drop:+.2f}"
        latency = row.latency
        to_float = "-" if latency is None else _ratio(latency.ratio, latency.low, latency.high)
        print(f"| {name} | {row.accuracy_drop_pts:.2f} | {versus} | {row.size_bytes} "
              f"| {row.size_ratio:.2f} | {to_float} "
              f"| {_ratio(against.ratio, *against.ratio_interval())} |", flush=True)


def _ratio(ratio: float, low: float | None, high: float | None) -> str:
    return f"{ratio:.2f} [{low:.2f}, {high:.2f}]" if low is not None else f"{ratio:.2f}"


if __name__ == "__main__":
    main()
