"""SIGTERM during load: every request the gateway answered is in the ledger afterwards."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import aiohttp
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.serve_process import start_serve


async def test_sigterm_under_load_loses_no_record(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"""
server: {{shed_loop_lag_ms: 0}}  # the test is about the ledger; lag on a busy CI machine would shed
ledger: {{path: "{ledger}", flush_interval_ms: 500}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: gpt-4o-mini}}
  - name: slow  # the same fake, told by a header to stream slowly: only the request that asks for it
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: gpt-4o-mini, headers: {{x-fake-mode: slow_stream}}}}
"""
    )
    proc, url = await start_serve(config, tmp_path)  # one worker process
    assert proc.stderr is not None
    # read the log as it comes (one access line per request): a full pipe would block the gateway
    log_read = asyncio.create_task(proc.stderr.read())
    answered: list[str] = []
    stop = asyncio.Event()
    loaded = asyncio.Event()

    async with aiohttp.ClientSession() as http:

        async def worker(w: int) -> None:
            i = 0
            while not stop.is_set():
                rid = f"w{w}-{i}"
                i += 1
                body = {"model": "fast", "messages": [{"role": "user", "content": f"hi {rid}"}], "stream": w % 2 == 0}
                headers = {"x-request-id": rid}
                try:
                    async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status == 200:  # requests shed under load (503) are not recorded
                            answered.append(resp.headers["x-request-id"])
                            if len(answered) >= 40:
                                loaded.set()
                except (aiohttp.ClientError, KeyError):
                    await asyncio.sleep(0.01)
                    if proc.returncode is not None:
                        return

        async def slow_stream() -> bytes:
            body = {"model": "slow", "messages": [{"role": "user", "content": "slow"}], "stream": True}
            async with http.post(f"{url}/v1/chat/completions", json=body, headers={"x-request-id": "slow-1"}) as resp:
                streaming.set()  # the response has started: the stream is in flight
                data = await resp.read()
                answered.append(resp.headers["x-request-id"])
                return data

        workers = [asyncio.create_task(worker(w)) for w in range(8)]
        # under load: a number of answers, not a fixed time (a busy machine answers fewer per second)
        await asyncio.wait_for(loaded.wait(), 120)
        streaming = asyncio.Event()
        slow = asyncio.create_task(slow_stream())
        await asyncio.wait_for(streaming.wait(), 30)  # on a busy machine a fixed sleep may be too short
        proc.send_signal(signal.SIGTERM)  # mid-load, with a 2.5 s stream in flight
        await asyncio.wait_for(proc.wait(), 60)
        stderr = await log_read
        stop.set()
        await asyncio.gather(*workers)

    # uvicorn re-raises the signal once its graceful shutdown is complete
    assert proc.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert "Application shutdown complete" in stderr.decode()
    assert len(answered) > 20
    slow_body = await slow
    assert b"tick" in slow_body, "the slow request should have been the slow stream"
    assert b"data: [DONE]" in slow_body, "the stream in flight at SIGTERM should have been completed"
    conn = sqlite3.connect(ledger)
    stored = {row[0] for row in conn.execute("SELECT client_request_id FROM requests")}
    conn.close()
    missing = set(answered) - stored
    assert not missing, f"{len(missing)} answered requests missing from the ledger, e.g. {sorted(missing)[:5]}"
