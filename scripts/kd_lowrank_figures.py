"""Figures of distillation and low-rank factorization on the bundled fixtures (issue 24,
points 3 and 4).

    python scripts/kd_lowrank_figures.py kd [--model digits_dscnn] [--epochs 6,2]
    python scripts/kd_lowrank_figures.py lowrank [--models tabular_mlp,digits_cnn]
        [--pairs 60] [--energy 0.9] [--budget 0.25]

``kd``: ``channel_prune_int8`` against ``channel_prune_kd_int8`` at the same epochs, and
the distilled recipe at alpha = 0 (its loss is the label loss: the spread from the plain
fine-tune is what a different random draw moves). ``lowrank``: ``lowrank_int8`` (and a
variant by retained energy) against ``ptq_int8``: size, drop, latency against float and against
``ptq_int8`` (interleaved pairs at one thread, in this process). Results are cached in
``$COMPRESSGATE_CACHE_DIR`` like any run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from compressgate.measure.litert import interleaved_latency
from compressgate.measure.machine import machine_class, this_machine
from compressgate.pipeline.cache import ResultCache
from compressgate.pipeline.runner import Runner
from compressgate.project import config
from compressgate.recipes import get_recipe

ROOT = Path(__file__).resolve().parent.parent


def _runner() -> Runner:
    return Runner(config.load(ROOT / "fixtures" / "manifest.json").specs, ResultCache(None),
                  isolate=False)


def _machine() -> None:
    print(f"machine class: {machine_class(this_machine())}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def kd(model: str, epochs: list[int]) -> None:
    runner = _runner()
    print("| model | recipe | epochs | Keras drop before int8 (pts) | int8 drop (pts) "
          "| fine-tune s |")
    print("|---|---|---|---|---|---|")
    for n in epochs:
        base = {"finetune": {"epochs": n}}
        recipes = [
            get_recipe("channel_prune_int8").with_overrides(
                {**base, "name": f"channel_prune_int8_e{n}"}),
            get_recipe("channel_prune_kd_int8").with_overrides(
                {**base, "name": f"channel_prune_kd_int8_e{n}"}),
            get_recipe("channel_prune_kd_int8").with_overrides(
                {"finetune": {"epochs": n, "distill": {"alpha": 0.0}},
                 "name": f"channel_prune_kd_a0_int8_e{n}"}),
        ]
        for recipe in recipes:
            row = runner.row(model, recipe)
            if not row.converted:
                print(f"| {model} | {recipe.name} | {n} | {row.error} |")
                continue
            print(f"| {model} | {recipe.name} | {n} | {row.finetune_drop_pts:.2f} "
                  f"| {row.accuracy_drop_pts:.2f} | {row.finetune_seconds:.0f} |", flush=True)


def lowrank(models: list[str], pairs: int, energy: float, budget: float) -> None:
    runner = _runner()
    print("| model | recipe | ranks | size B | size ratio | drop (pts) | Keras drop (pts) "
          "| latency ms | vs float [95 %] | vs ptq_int8 [95 %] |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in models:
        ref, ptq = runner.outcome(model, "float"), runner.outcome(model, "ptq_int8")
        sample = runner.sample(model)
        recipes = [get_recipe("ptq_int8"),
                   get_recipe("lowrank_int8").with_overrides({"lowrank": {"budget": budget}}),
                   get_recipe("lowrank_int8").with_overrides(
                       {"name": "lowrank_energy_int8",
                        "lowrank": {"energy": energy, "budget": None}})]
        for recipe in recipes:
            row, out = runner.row(model, recipe), runner.outcome(model, recipe)
            if not row.converted:
                print(f"| {model} | {recipe.name} | {row.error} |", flush=True)
                continue
            ratios = []
            for base in (ref, ptq):
                timed = interleaved_latency(base.tflite, out.tflite, sample, pairs=pairs)
                low, high = timed.ratio_interval()
                ratios.append(f"{timed.ratio:.2f} [{low:.2f}, {high:.2f}]")
            ranks = ", ".join(f"{k} {v}" for k, v in (row.factorized or {}).items()) or "-"
            keras_drop = ("-" if row.finetune_drop_pts is None
                          else f"{row.finetune_drop_pts:.2f}")
            print(f"| {model} | {recipe.name} | {ranks} | {row.size_bytes} "
                  f"| {row.size_ratio:.2f} | {row.accuracy_drop_pts:.2f} | {keras_drop} "
                  f"| {timed.candidate_median_ms:.3f} | {ratios[0]} | {ratios[1]} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("kd", "lowrank"))
    parser.add_argument("--model", default="digits_dscnn")
    parser.add_argument("--epochs", default="6")
    parser.add_argument("--models", default="tabular_mlp,digits_cnn")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--energy", type=float, default=0.9)
    parser.add_argument("--budget", type=float, default=0.25)
    args = parser.parse_args()
    _machine()
    if args.what == "kd":
        kd(args.model, [int(n) for n in args.epochs.split(",")])
    else:
        lowrank(args.models.split(","), args.pairs, args.energy, args.budget)


if __name__ == "__main__":
    main()
