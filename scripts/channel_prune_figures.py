"""Figures of the channel-pruning recipes on the bundled conv fixtures: size, accuracy
drop, and latency ratios against float and against plain ``ptq_int8``, each timed in
interleaved pairs in this process (``measure.litert.interleaved_latency``).

    python scripts/channel_prune_figures.py [--models digits_cnn,digits_dscnn]
        [--recipes channel_prune_int8,channel_prune_qat_int8] [--fraction 0.7] [--pairs 42]

``--fraction`` adds a variant of each recipe with that fraction (named ``..._fNN``).
``--criteria`` instead prints the Keras test accuracy right after pruning (BatchNorm
recalibrated, no fine-tune) for each criterion at 30/50/70 %: what chose the default.
Results are cached in ``$COMPRESSGATE_CACHE_DIR`` like any run.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits_cnn,digits_dscnn")
    parser.add_argument("--recipes", default="channel_prune_int8,channel_prune_qat_int8")
    parser.add_argument("--fraction", type=float, action="append", default=[])
    parser.add_argument("--pairs", type=int, default=42, help="latency pairs per ratio")
    parser.add_argument("--criteria", action="store_true")
    args = parser.parse_args()
    if args.criteria:
        criteria(args.models.split(","))
        return
    runner = Runner(config.load(ROOT / "fixtures" / "manifest.json").specs, ResultCache(None))
    recipes = [get_recipe(name) for name in args.recipes.split(",")]
    recipes += [r.with_overrides({"name": f"{r.name}_f{round(f * 100)}",
                                  "channel_prune": {"fraction": f}})
                for f in args.fraction for r in recipes]
    print(f"machine class: {machine_class(this_machine())}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| model | recipe | size B | gzip B | drop pts | latency ms | vs float [95 %] "
          "| vs ptq_int8 [95 %] | size ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        ref, ptq = runner.outcome(model, "float"), runner.outcome(model, "ptq_int8")
        sample = runner.sample(model)
        for recipe in [get_recipe("ptq_int8"), *recipes]:
            out = runner.outcome(model, recipe)
            row = runner.row(model, recipe)
            if not out.converted:
                print(f"| {model} | {recipe.name} | {out.error} |")
                continue
            ratios = []
            for base in (ref, ptq):
                pairs = interleaved_latency(base.tflite, out.tflite, sample, pairs=args.pairs)
                low, high = pairs.ratio_interval()
                ratios.append(f"{pairs.ratio:.2f} [{low:.2f}, {high:.2f}]")
            print(f"| {model} | {recipe.name} | {row['size_bytes']} | {row['gzip_bytes']} "
                  f"| {row['accuracy_drop_pts']:.2f} | {pairs.candidate_median_ms:.3f} "
                  f"| {ratios[0]} | {ratios[1]} | {row['size_ratio']:.2f} |", flush=True)


def criteria(models: list[str]) -> None:
    import numpy as np

    from compressgate.backends.tf.channel_prune import prune_channels
    from compressgate.backends.tf.convert import _recalibrate_batchnorm
    from compressgate.backends.tf.env import deterministic
    from compressgate.backends.tf.loading import load_model
    from compressgate.recipes import ChannelPruning

    specs = config.load(ROOT / "fixtures" / "manifest.json").specs
    print("| model | removed | criterion | params | accuracy before fine-tune |")
    print("|---|---|---|---|---|")
    for name in models:
        deterministic()
        model, data = load_model(specs[name]), specs[name].load_data()

        def accuracy(m, data=data) -> float:
            return float(np.mean(np.argmax(m.predict(data.x_test, verbose=0), -1)
                                 == data.y_test))

        print(f"| {name} | 0 | float | {model.count_params()} | {accuracy(model):.4f} |")
        for fraction in (0.3, 0.5, 0.7):
            for criterion in ("l1", "bn_gamma"):
                narrow = prune_channels(model, ChannelPruning(fraction, criterion))
                _recalibrate_batchnorm(narrow, data.x_train)
                print(f"| {name} | {fraction:.0%} | {criterion} | {narrow.count_params()} "
                      f"| {accuracy(narrow):.4f} |", flush=True)


if __name__ == "__main__":
    main()
