"""Baseline writes under process death and concurrency: never partial, never clobbered."""

import json
import os
import signal
import subprocess
import sys
import time

from compressgate.gate import baselines as bl

WRITER = """
import sys
from pathlib import Path
from compressgate.gate import baselines as bl
path, key, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
env = {"cpu": "test"}
for i in range(n):
    bl.update(path, "m", "r", {key: i, "pad": "x" * (i % 7) * 1000}, env)
print("done", flush=True)
"""


def writer(path, key, n):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), key, str(n)],
                            stdout=subprocess.PIPE, text=True)


def test_sigkill_mid_update_leaves_a_whole_file(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    for attempt in range(8):
        before = path.stat().st_mtime_ns if path.exists() else 0
        proc = writer(path, "accuracy", 100_000)
        deadline = time.monotonic() + 30
        while (not path.exists() or path.stat().st_mtime_ns == before) \
                and time.monotonic() < deadline:
            time.sleep(0.005)  # until this writer is writing
        time.sleep(0.01 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = bl.load(path, "m", "r")  # raises if the file were partial
        assert stored is not None and isinstance(stored.metrics["accuracy"], int)
        # Exactly one written version: the padding matches the counter it was written with.
        assert stored.metrics["pad"] == "x" * (stored.metrics["accuracy"] % 7) * 1000
    leftovers = [p.name for p in path.parent.iterdir()
                 if p.name != "r.json" and not p.name.endswith(".lock")]
    assert leftovers == [] or all(p.startswith(".r.json.") for p in leftovers)


def test_two_processes_updating_one_file_keep_both_keys(tmp_path):
    path = bl.path_for(tmp_path, "m", "r")
    procs = [writer(path, "accuracy", 200), writer(path, "latency_ratio", 200)]
    for proc in procs:
        assert proc.communicate(timeout=120)[0].strip() == "done"
    metrics = json.loads(path.read_text())["metrics"]
    assert metrics["accuracy"] == 199 and metrics["latency_ratio"] == 199
