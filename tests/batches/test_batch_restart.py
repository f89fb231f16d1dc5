"""Kill the gateway (SIGKILL) in the middle of a gateway-run batch and start it again.

The batch completes with every ``custom_id`` exactly once in the output, and the upstream saw
each request once, or twice for the few that were in flight at the kill. The whole process group
is killed (``serve`` runs a supervisor, workers and a writer); the new gateway takes the batch
back once the dead workers' leases expire (``lease_s``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import openai
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.ports import free_port

LINES = int(os.environ.get("TOKENOMY_TEST_BATCH_LINES", "1500"))
CONCURRENCY = 8


async def start(config: Path, port: int, home: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--config", str(config),
        "--port", str(port), env={**os.environ, "TOKENOMY_HOME": str(home)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return proc


async def kill_all(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the gateway's whole process group (supervisor, workers, writer), as a machine crash would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def wait_up(oai: openai.AsyncOpenAI) -> None:
    for _ in range(600):
        try:
            await oai.batches.list(limit=1)
            return
        except openai.APIConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not start")


async def test_sigkill_mid_batch_loses_nothing_and_repeats_only_in_flight_requests(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    openai_fake.reset()  # the fake is shared by the session: count only this test's requests
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"""
server: {{shed_loop_lag_ms: 0}}  # the machine's load is not the gateway's (as in tests/support/gateway.py)
batches: {{dir: "{tmp_path / "batches"}", concurrency: {CONCURRENCY}, yield_to_live: 0, lease_s: 2}}
ledger: {{path: "{tmp_path / "ledger.db"}"}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: gpt-4o-mini}}
"""
    )
    port = free_port()
    oai = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=3)
    rows = [
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "fast", "messages": [{"role": "user", "content": f"line {i}"}]}})
        for i in range(LINES)
    ]  # fmt: skip
    proc = await start(config, port, tmp_path)
    try:
        await wait_up(oai)
        uploaded = await oai.files.create(file=("in.jsonl", "\n".join(rows).encode()), purpose="batch")
        batch = await oai.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        async with asyncio.timeout(60):
            while True:
                current = await oai.batches.retrieve(batch.id)
                assert current.request_counts is not None
                if current.request_counts.completed >= LINES // 4:
                    break
                await asyncio.sleep(0.02)
        await kill_all(proc)
        sent_before = len(openai_fake.requests)
        assert sent_before < LINES, "the batch finished before the kill; the test proves nothing"

        proc = await start(config, port, tmp_path)
        await wait_up(oai)
        async with asyncio.timeout(120):
            while (current := await oai.batches.retrieve(batch.id)).status != "completed":
                assert current.status in ("validating", "in_progress", "finalizing"), current
                await asyncio.sleep(0.1)
        assert current.output_file_id is not None
        content = (await oai.files.content(current.output_file_id)).text
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()

    assert current.request_counts is not None
    assert (current.request_counts.completed, current.request_counts.failed) == (LINES, 0)
    assert current.error_file_id is None
    ids = collections.Counter(json.loads(line)["custom_id"] for line in content.splitlines())
    assert ids == collections.Counter(f"c{i}" for i in range(LINES))  # each exactly once
    seen = collections.Counter(
        r.body["messages"][0]["content"] for r in openai_fake.requests if r.path.endswith("/chat/completions")
    )
    assert set(seen) == {f"line {i}" for i in range(LINES)}  # none lost
    twice = [text for text, n in seen.items() if n > 1]
    assert all(seen[text] == 2 for text in twice)
    assert len(twice) <= CONCURRENCY  # only what was in flight at the kill
