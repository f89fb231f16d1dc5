"""``tokenomy serve`` in a subprocess on a free loopback port, for tests of the whole process (signals, logs)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
from tests.support.ports import free_port


async def start_serve(
    config: Path, home: Path, *args: str, output: int = asyncio.subprocess.PIPE
) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``tokenomy serve --config CONFIG`` (stdout and stderr to ``output``: piped, or ``DEVNULL`` for
    long runs whose logs nobody reads); return it and its URL once healthy."""
    port = free_port()
    workers = () if "--workers" in args else ("--workers", "1")  # these tests look at one process
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--config", str(config),
        "--port", str(port), *args, *workers, env={**os.environ, "TOKENOMY_HOME": str(home)},
        stdout=output, stderr=output,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = asyncio.get_running_loop().time() + 120  # start-up is slow on a busy machine
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline and proc.returncode is None:
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    if proc.returncode is None:
        proc.kill()
    raise AssertionError(f"tokenomy serve did not become healthy (exit code {proc.returncode})")
