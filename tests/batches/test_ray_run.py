"""``tokenomy batch run --ray``: the same results on a local Ray as in process.

Ray listens beyond loopback, so the job runs in a private network namespace (``unshare -n``,
loopback only). Skipped where Ray is not installed (it is the optional ``ray`` extra) or no
namespace can be made.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or not _can_unshare(), reason="needs ray and unshare -n"
)


async def test_ray_and_in_process_give_the_same_output(tmp_path: Path) -> None:
    script = (
        "ip link set lo up && export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 && "
        f"exec {sys.executable} -m tests.batches.ray_job {tmp_path} 250"
    )
    env = {**os.environ, "TOKENOMY_HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = await asyncio.create_subprocess_exec(
        "unshare", "-n", "bash", "-c", script, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["ray"]["completed"] == result["local"]["completed"] == 250
    assert result["ray"]["failed"] == result["local"]["failed"] == 1
    assert result["ray_lines"] == 250 and result["ray_errors"] == 1
    assert result["upstream_seen_by_ray"] == 250  # each request once
    assert result["ray"]["paced"] == 250  # each paced by the job-wide bucket actor, across the shard tasks
    assert result["same_answers"]
