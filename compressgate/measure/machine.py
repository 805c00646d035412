"""The machine a figure was measured on: what chooses the kernels, not the brand name.

Two CPUs sold under one name ("AMD EPYC") can run different code: XNNPACK picks its int8
kernels by ISA (VNNI or not), oneDNN picks TensorFlow's training kernels by ISA, so
fine-tuned weights, latency ratios and even output rounding move with it. The *class* is
the part of the fingerprint that selects kernels (architecture, kernel-selecting ISA
flags, and a oneDNN ISA cap if one is set); machine-bound figures are compared only
within one class. The full fingerprint (vendor, family/model/stepping, cores) is shown
in reports so a person can tell machines apart.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# ISA flags (as /proc/cpuinfo names them) that XNNPACK or oneDNN dispatch on.
KERNEL_FLAGS = {
    "x86_64": ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
               "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16"),
    "aarch64": ("asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2"),
}
# Settings that cap the ISA TensorFlow's oneDNN kernels may use (they change fine-tuned
# bytes exactly as another CPU would).
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
_UNCAPPED = ("", "ALL", "DEFAULT")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's ``key: value`` lines (all cores of one machine match)."""
    info: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def fingerprint(cpuinfo: dict[str, str] | None = None,
                environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What this machine is: vendor, family/model/stepping, kernel-selecting ISA flags,
    cores, and any ISA cap in force. ``cpuinfo``/``environ`` are for tests."""
    info = _cpuinfo() if cpuinfo is None else cpuinfo
    env = os.environ if environ is None else environ
    arch = platform.machine() if cpuinfo is None else info.get("arch", platform.machine())
    flags = set((info.get("flags") or info.get("Features") or "").split())
    wanted = KERNEL_FLAGS.get(arch, ())
    cap = next((env[k].strip().upper() for k in ISA_CAPS
                if env.get(k, "").strip().upper() not in _UNCAPPED), None)
    return {
        "arch": arch,
        "vendor": info.get("vendor_id") or info.get("CPU implementer") or "unknown",
        "family": info.get("cpu family") or info.get("CPU architecture") or "",
        "model": info.get("model") or info.get("CPU part") or "",
        "stepping": info.get("stepping") or info.get("CPU variant") or "",
        "name": info.get("model name") or platform.processor() or arch,
        "isa": sorted(f for f in wanted if f in flags),
        "isa_cap": cap,
        "cores": os.cpu_count() or 1,
    }


def machine_class(fp: dict[str, Any]) -> str:
    """The kernel-selecting part of a fingerprint, e.g. ``x86_64 avx2+avx512f+...``."""
    text = f"{fp['arch']} {'+'.join(fp['isa']) or 'baseline'}"
    return text + (f" (oneDNN <= {fp['isa_cap']})" if fp.get("isa_cap") else "")


_THIS: dict[str, Any] | None = None


def this_machine() -> dict[str, Any]:
    """This process's fingerprint (read once)."""
    global _THIS
    if _THIS is None:
        _THIS = fingerprint()
    return _THIS


def other_runnable(stat: Path = Path("/proc/stat")) -> int | None:
    """How many other tasks are runnable on the machine right now (``procs_running``
    less this one); ``None`` where the kernel does not say."""
    try:
        for line in stat.read_text().splitlines():
            if line.startswith("procs_running"):
                return max(0, int(line.split()[1]) - 1)
    except (OSError, ValueError, IndexError):
        pass
    return None
