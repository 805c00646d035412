"""How a run's cost grows with the work: ``compressgate run`` over 1, 2, 4 fixtures x
3 / 9 recipes, cold (an empty result cache) then warm (the same cache), per ``--jobs``.

    python scripts/scaling.py [--models 1,2,4] [--recipes 3,9] [--jobs 2,1] [--out FILE]

A benchmark, not a test: it asserts nothing and prints a Markdown table (also written to
``--out``). Per run: wall time, time per case, the run's own phases (``results``: computing
or reusing every result; ``rows``: latency pairs and a fresh process per row for peak
memory), the fine-tune and conversion seconds summed over the results computed in that
run, and the 2-core bound Σ(fine-tune + convert) / jobs that the cold wall time is
compared with. Run it on a quiet machine; a figure from a busy one says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["digits_cnn", "digits_dscnn", "seq_rnn", "tabular_mlp"]
THREE = ["float", "ptq_int8", "prune_int8"]  # no training, calibration, fine-tuning


def run_once(models: list[str], recipes: list[str] | None, jobs: int, cache: Path,
             out: Path) -> dict:
    command = [sys.executable, "-m", "compressgate", "run", "--models", ",".join(models),
               "--jobs", str(jobs), "--out", str(out)]
    if recipes:
        command += ["--recipes", ",".join(recipes)]
    env = {**os.environ, "COMPRESSGATE_CACHE_DIR": str(cache), "PYTHONHASHSEED": "0"}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    fresh = [r for r in summary["results"] if not r.get("cached")]
    return {"wall": wall, "cases": len(summary["results"]),
            "phases": summary.get("phase_seconds", {}),
            "finetune": sum(r.get("finetune_seconds") or 0 for r in fresh),
            "convert": sum(r.get("convert_seconds") or 0 for r in fresh),
            "computed": len(fresh)}


def load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,4")
    parser.add_argument("--recipes", default="3,9")
    parser.add_argument("--jobs", default="2,1")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    lines = ["| models | recipes | jobs | cache | wall s | s/case | results s | rows s | "
             "Σ fine-tune s | Σ convert s | bound s | wall / bound | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for jobs in map(int, args.jobs.split(",")):
        for n_models in map(int, args.models.split(",")):
            for n_recipes in map(int, args.recipes.split(",")):
                models = MODELS[:n_models]
                recipes = THREE if n_recipes == 3 else None
                with tempfile.TemporaryDirectory(prefix="cg-scaling-") as scratch:
                    cache = Path(scratch) / "cache"
                    for state in ("cold", "warm"):
                        before = load()
                        r = run_once(models, recipes, jobs, cache, Path(scratch) / state)
                        work = r["finetune"] + r["convert"]
                        bound = work / jobs if state == "cold" else None
                        line = (f"| {n_models} | {n_recipes} | {jobs} | {state} | "
                                f"{r['wall']:.0f} | {r['wall'] / r['cases']:.1f} | "
                                f"{r['phases'].get('results', '')} | "
                                f"{r['phases'].get('rows', '')} | {r['finetune']:.0f} | "
                                f"{r['convert']:.0f} | {bound or 0:.0f} | "
                                + (f"{r['wall'] / bound:.2f}" if bound else "-")
                                + f" | {before} |")
                        lines.append(line)
                        print(line, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
