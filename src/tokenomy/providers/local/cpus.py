"""How many CPUs this process may really use: its CPU affinity and its cgroup's CPU quota.

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
