"""SIGTERM with a request that will not finish: the gateway cancels it at the deadline, records it, exits."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.serve_process import start_serve


async def test_shutdown_cancels_at_the_deadline_and_records_the_request(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"""
server: {{shutdown_timeout_s: 1.0}}
ledger: {{path: "{ledger}"}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: gpt-4o-mini}}
"""
    )
    proc, url = await start_serve(config, tmp_path)
    async with aiohttp.ClientSession() as http:
        openai_fake.reset()  # the fake is shared by the session: no modes left over from other tests
        openai_fake.queue_modes("slow")
        body = {"model": "fast", "messages": [{"role": "user", "content": "take your time"}]}
        headers = {"x-request-id": "long-1", "x-fake-delay": "60"}
        pending = asyncio.create_task(http.post(f"{url}/v1/chat/completions", json=body, headers=headers))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        took = time.monotonic() - started
        resp = await pending
        status = resp.status
        resp.release()
    log = stderr.decode()
    assert took < 10, f"shutdown took {took:.1f} s with a 1 s deadline\n{log[-2000:]}"
    assert "shutdown deadline reached: cancelling 1 request(s)" in log, log[-2000:]
    assert status == 503, "the request cut short is answered, not dropped"
    assert "Traceback" not in log, log[-3000:]
    conn = sqlite3.connect(ledger)
    rows = conn.execute("SELECT status, error_type FROM requests WHERE client_request_id = 'long-1'").fetchall()
    conn.close()
    assert rows == [(503, "shutdown")]
