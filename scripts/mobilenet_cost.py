"""What a 2.3M-parameter model costs the gate: MobileNetV2 through ``compressgate run``.

    python scripts/mobilenet_cost.py [--dir DIR] [--jobs 2] [--recipes a,b,...]

A benchmark, not a test: it asserts nothing. It builds ``keras.applications.MobileNetV2``
(``weights=None``, 96x96x3, 10 classes, tf_keras), trains it for one epoch on generated
images (a class is a coloured blob at a class-dependent place: learnable in one epoch,
nothing downloaded), saves it as a user would, writes a ``compressgate init`` project
(timed: it converts ptq_int8, which the first run reuses) and times ``compressgate run``
cold (no other result cached) then warm. It prints the wall time, the run's phases, each
result's fine-tune and conversion seconds, the peak RSS of the largest process
(``ru_maxrss`` of the waited-for children) and the rows' TFLM arena and peak memory, as a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = "float,ptq_int8,qat_int8,prune_int8,channel_prune_int8"
SIZE, CLASSES = 96, 10


def _images(n: int, rng) -> tuple:
    import numpy as np

    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, 0.15, (n, SIZE, SIZE, 3)).astype(np.float32)
    grid = np.arange(SIZE)
    for i, label in enumerate(y):
        row, col = divmod(int(label), 5)
        cy, cx = 20 + 56 * row, 10 + 19 * col
        blob = np.exp(-(((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / 60.0))
        x[i, :, :, label % 3] += blob.astype(np.float32)
    return x, y.astype(np.int64)


def build(directory: Path) -> None:
    """``model.h5`` + ``data.npz`` in ``directory`` (in a child: TensorFlow stays out)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tf_keras as keras

    rng = np.random.default_rng(0)
    x, y = _images(1400, rng)
    splits = {"x_train": x[:800], "y_train": y[:800], "x_calib": x[800:1000],
              "y_calib": y[800:1000], "x_test": x[1000:], "y_test": y[1000:]}
    np.savez(directory / "data.npz", **splits)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None,
                                           classes=CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits["x_train"], splits["y_train"], epochs=1, batch_size=32, verbose=0)
    print(f"parameters {model.count_params()}, test accuracy "
          f"{model.evaluate(splits['x_test'], splits['y_test'], verbose=0)[1]:.3f}")
    model.save(directory / "model.h5")


def _run(directory: Path, jobs: int, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "compressgate", "run", "--jobs", str(jobs),
                    "--out", str(out)], cwd=directory, check=True)
    return time.perf_counter() - start, json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--recipes", default=RECIPES)
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="cg-mobilenet-"))
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COMPRESSGATE_CACHE_DIR": str(directory / "cache"),
           "PYTHONHASHSEED": "0"}
    os.environ.update(env)
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--build", str(directory)], check=True)
    print(f"built and trained in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "compressgate", "init", "model.h5", "--data",
                    "data.npz", "--recipes", args.recipes], cwd=directory, check=True)
    # init converts ptq_int8 to measure where the model runs; the cold run reuses it.
    print(f"compressgate init in {time.perf_counter() - start:.0f} s")
    print("| cache | wall s | phases s | load before |\n|---|---|---|---|")
    summaries = {}
    for state in ("cold", "warm"):
        load = Path("/proc/loadavg").read_text().split()[0]
        wall, summary = _run(directory, args.jobs, directory / f"reports-{state}")
        summaries[state] = summary
        print(f"| {state} | {wall:.0f} | {summary.get('phase_seconds')} | {load} |",
              flush=True)
    print(f"peak RSS of the largest process: "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB")
    print("| recipe | fine-tune s | convert s | drop pts | size bytes | latency ratio | "
          "peak memory bytes | TFLM arena bytes |\n|---|---|---|---|---|---|---|---|")
    for r in summaries["cold"]["results"]:
        print(f"| {r['recipe']} | {r.get('finetune_seconds')} | {r.get('convert_seconds')} | "
              f"{r.get('accuracy_drop_pts')} | {r.get('size_bytes')} | "
              f"{r.get('latency_ratio')} | {r.get('peak_memory_bytes')} | "
              f"{r.get('tflm_arena_bytes')} |")

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        build(Path(sys.argv[2]))
    else:
        main()
