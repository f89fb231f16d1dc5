"""What the CPUs are: how many this process may really use (its CPU affinity and its cgroup's CPU
quota), and their model and feature flags.

``os.cpu_count()`` counts the machine's cores; in a container limited to two CPUs, or on a host
where the process is pinned to a few cores, a thread per core oversubscribes the CPUs and every
token waits for the scheduler (measured in bench/local: several times slower on a busy host).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_limit(cpu_max: Path = CGROUP_CPU_MAX) -> float | None:
    """The cgroup's CPU quota in CPUs (``1.5``), or ``None`` when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = float(CGROUP_V1_QUOTA.read_text())
        period_us = float(CGROUP_V1_PERIOD.read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on (affinity), capped by the cgroup quota (rounded up); at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cpu_max)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """The CPU's model name and feature flags as ``/proc/cpuinfo`` lists them (empty where it cannot be read)."""
    name, flags = "", ""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    return name, flags.split()


INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""CPU flags (``/proc/cpuinfo``) under which ONNX Runtime's int8 matmuls beat float32."""


def fast_int8(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU has int8 dot-product instructions (:data:`INT8_FLAGS`); ``None`` when that
    cannot be told (not Linux, no access, or not an x86 CPU with AVX2, the kind measured)."""
    flags = set(cpu_info(cpuinfo)[1])
    if "avx2" not in flags:
        return None
    return bool(INT8_FLAGS & flags)
