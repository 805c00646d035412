"""Latency ratios across fresh processes, and the envelope rule's false-alarm rate.

``measure``: times a recipe's accepted ``.tflite`` against the model's float one (both
from ``baselines/``, no TensorFlow) in N fresh processes, one after another, the way the
gate's measuring children do; prints each process's median ratio, its 95 % interval, the
CPU the child ended on, where the candidate's bytes sat (mod 64) and the load average::

    python scripts/latency_processes.py measure seq_rnn ptq_int8 prune_int8 --processes 12

``simulate``: the false-alarm rate and the power of ``compressgate.gate.envelope`` on
simulated process medians (modes drawn per process, pairs spread within one), by
Monte Carlo: records of ``RECORD_PROCESSES``, runs of ``RUN_PROCESSES`` (more when every
one is beyond the envelope), the gate's confirmation on failure::

    python scripts/latency_processes.py simulate --trials 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import ctypes, json, sys
import numpy as np
from compressgate.measure.litert import interleaved_times
from compressgate.measure.stats import LatencyPairs
ref, cand = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
sample = np.load(sys.argv[3])
pairs = LatencyPairs(**interleaved_times(ref, cand, sample, pairs=int(sys.argv[4])))
low, high = pairs.ratio_interval()
cpu = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[36])
addr = ctypes.cast(ctypes.c_char_p(cand), ctypes.c_void_p).value
print(json.dumps({'ratio': pairs.ratio, 'low': low, 'high': high, 'cpu': cpu,
                  'align': addr % 64, 'others': pairs.others_running,
                  'float_ms': pairs.reference_median_ms}))
"""


def measure(args: argparse.Namespace) -> None:
    from compressgate.measure.machine import machine_class, this_machine

    base = ROOT / "baselines" / args.model
    sample_path = Path(f"/tmp/latency-sample-{args.model}.npy")
    if not sample_path.exists():
        from compressgate.project import config

        spec = config.load(ROOT / "fixtures" / "manifest.json").specs[args.model]
        np.save(sample_path, spec.load_data().x_test[:1].astype(np.float32))
    print(f"machine class: {machine_class(this_machine())}")
    for recipe in args.recipes:
        for i in range(args.processes):
            out = subprocess.run([sys.executable, "-c", _CHILD, str(base / "float.tflite"),
                                  str(base / f"{recipe}.tflite"), str(sample_path),
                                  str(args.pairs)], capture_output=True, text=True, check=True)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            load = os.getloadavg()[0]
            print(f"{args.model} {recipe} process {i + 1}: ratio {doc['ratio']:.3f} "
                  f"({doc['low']:.3f}-{doc['high']:.3f}), float {doc['float_ms']:.4f} ms, "
                  f"cpu {doc['cpu']}, align {doc['align']}, others {doc['others']}, "
                  f"load {load:.2f}", flush=True)


def _pairs(ratio: float, rng: np.random.Generator, n: int, spread: float):
    from compressgate.measure.stats import LatencyPairs

    ref = 1 + rng.uniform(0, 0.2, n)
    return LatencyPairs(tuple(ref), tuple(ref * ratio * np.exp(rng.normal(0, spread, n))))


def simulate(args: argparse.Namespace) -> None:
    """Bimodal processes as measured on the Intel fp16 class for seq_rnn ptq_int8: the
    fast mode 6.6-7.4, the slow 9.3-9.6 (``--fast``, ``--slow``), each process picking one
    with ``--p-slow``; ``--p-slow 0 --fast 6.9 7.1`` is a model that does not flip."""
    from compressgate.gate import envelope

    rng = np.random.default_rng(args.seed)
    factor, alpha = 1.15, 0.01

    def process(slowdown: float = 1.0):
        mode = rng.uniform(*args.slow) if rng.random() < args.p_slow else rng.uniform(*args.fast)
        return _pairs(mode * slowdown, rng, args.pairs, 0.02)

    def run(recorded, slowdown: float) -> bool:
        """One gate check: judged, and confirmed on fresh processes when it fails."""
        for _ in range(2):
            runs: list = []

            def more(n, runs=runs):
                runs.extend(process(slowdown) for _ in range(n - len(runs)))
                return tuple(runs[:n])

            got = envelope.runs_for(recorded, more, factor, alpha)
            if not envelope.judge(recorded, got, factor, alpha).regression:
                return False
        return True

    records = bad = false_alarms = checks = caught = 0
    for _ in range(args.trials):
        recorded = [p.ratio for p in (process() for _ in range(envelope.RECORD_PROCESSES))]
        records += 1
        bad += max(recorded) <= args.fast[1] * 1.1  # every recorded process fast
        for _ in range(args.runs):
            checks += 1
            false_alarms += run(recorded, 1.0)
        caught += run(recorded, args.slowdown)
    print(f"modes per process: {args.fast} or, with p {args.p_slow}, {args.slow}; records of "
          f"{envelope.RECORD_PROCESSES} processes, runs of {envelope.RUN_PROCESSES} (up to "
          f"{envelope.processes_needed(envelope.RECORD_PROCESSES, alpha)}), confirmed once")
    print(f"records: {records}, of them all in the fast mode: {bad}")
    print(f"unchanged checks: {checks}, false alarms: {false_alarms} "
          f"({false_alarms / checks:.2e})")
    print(f"slowed by {args.slowdown}x: caught {caught} of {records}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("model")
    m.add_argument("recipes", nargs="+")
    m.add_argument("--processes", type=int, default=10)
    m.add_argument("--pairs", type=int, default=42)
    s = sub.add_parser("simulate")
    s.add_argument("--trials", type=int, default=2000)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--p-slow", type=float, default=0.5)
    s.add_argument("--fast", type=float, nargs=2, default=(6.6, 7.4))
    s.add_argument("--slow", type=float, nargs=2, default=(9.3, 9.6))
    s.add_argument("--slowdown", type=float, default=1.3)
    s.add_argument("--pairs", type=int, default=42)
    s.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (measure if args.command == "measure" else simulate)(args)


if __name__ == "__main__":
    main()
