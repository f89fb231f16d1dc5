"""Acknowledged requests survive a ``kill -9`` of the ledger writer process (the crash-durability note
of the audit, tested once the writer process existed).

As found (with the writer in the gateway's process): a kill -9 lost the last ~50-200 ms of records of
answered requests. With a writer process, its journal keeps what it has read; what it had not read
yet -- records waiting in its socket's receive queue, which the kernel discards when the process
dies -- was still lost. Here the writer is stopped (SIGSTOP) while requests are answered, so their
records pile up unread, then killed: every answered request must still get its row.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
from tests.fakes.openai_upstream import OpenAIFake
from tests.ledger.test_crash import CLIENT_TIMEOUT, Load, wait_for, writer_pids


async def test_records_unread_by_a_killed_writer_are_not_lost(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    load = Load(openai_fake, tmp_path)
    async with load.running() as proc:
        [first] = writer_pids(proc.pid)
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as http:
            clients = [asyncio.create_task(load.client(http, w)) for w in range(8)]
            await wait_for(lambda: len(load.answered) >= 50, 30, "traffic")
            os.kill(first, signal.SIGSTOP)  # it reads nothing more: records wait in its socket
            stopped_at = len(load.answered)
            await wait_for(lambda: len(load.answered) >= stopped_at + 100, 30, "traffic while the writer is stopped")
            os.kill(first, signal.SIGKILL)
            await wait_for(lambda: [p for p in writer_pids(proc.pid) if p != first], 10, "a new writer")
            killed_at = len(load.answered)
            await wait_for(lambda: len(load.answered) >= killed_at + 50, 30, "traffic after the restart")
            load.stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), 30)
        proc.send_signal(signal.SIGTERM)
        await load.stderr_until_exit(proc)
    stored = load.stored()
    missing = set(load.answered) - set(stored)
    assert not missing, f"{len(missing)} of {len(load.answered)} answered requests lost, e.g. {sorted(missing)[:5]}"
    assert max(stored.values()) == 1, "a record both journalled and re-sent is stored once"
