"""Shadow traffic end to end: copies after the answer, recorded apart, capped, bounded, no effect on clients."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.config import ConfigError, parse_config
from tokenomy.evaluate import shadow as shadow_module

ROOT = Path(__file__).parents[2]


def config_yaml(url: str, ledger: Path, cap: float = 5.0, sample: float = 1.0, slow_small: bool = False) -> str:
    slow = ", headers: {x-fake-mode: slow, x-fake-delay: '1.5'}" if slow_small else ""
    return f"""
ledger: {{path: "{ledger}", store_prompts: true, flush_interval_ms: 20}}
models:
  - {{name: big, deployments: [{{provider: openai, base_url: "{url}", model: big-up,
      pricing: {{input_per_mtok: 10, output_per_mtok: 30}}}}]}}
  - {{name: small, deployments: [{{provider: openai, base_url: "{url}", model: small-up,
      pricing: {{input_per_mtok: 1, output_per_mtok: 1}}{slow}}}]}}
shadow:
  - {{task: qa, model: big, candidate: small, sample: {sample}, max_usd_per_day: {cap}}}
"""


async def ask(http: httpx.AsyncClient, url: str, text: str, task: str = "qa", stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": "big", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return await http.post(f"{url}/v1/chat/completions", json=body, headers={"x-tokenomy-task": task})


def rows(ledger: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    found = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY ts")]
    conn.close()
    return found


async def test_copies_are_recorded_apart_and_reported(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    cfg = tmp_path / "gw.yaml"
    async with OpenAIFake() as fake:
        await fake.start()
        cfg.write_text(config_yaml(fake.base_url, ledger))
        async with running_gateway(parse_config(cfg.read_text())) as gw, httpx.AsyncClient() as http:
            answers = [await ask(http, gw.url, f"question {i}", stream=i % 2 == 1) for i in range(4)]
            other = await ask(http, gw.url, "not shadowed", task="chat")
            shadow = gw.app.gateway.shadow
            assert shadow is not None
            await shadow.wait_idle()
            await gw.flush_ledger()
    assert all(a.status_code == 200 for a in [*answers, other])
    assert answers[0].json()["choices"][0]["message"]["content"] == "echo: question 0"  # the client's answer as is
    found = rows(ledger)
    production = [r for r in found if r["shadow_of"] is None]
    copies = [r for r in found if r["shadow_of"] is not None]
    assert len(production) == 5 and len(copies) == 4
    ids = {r["request_id"] for r in production if r["task"] == "qa"}
    assert {c["shadow_of"] for c in copies} == ids
    for copy in copies:
        assert (copy["requested_model"], copy["task"], copy["status"]) == ("small", "qa", 200)
        assert copy["response"].startswith("echo: question") and copy["cost_usd"] > 0
    copied_bodies = [r.body for r in fake.requests if r.body["model"] == "small-up"]
    assert len(copied_bodies) == 4 and not any(b.get("stream") for b in copied_bodies)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    base = [sys.executable, "-m", "tokenomy.cli", "report", "--config", str(cfg), "--format", "json"]
    out = await _run([*base], env)
    assert sum(g["requests"] for g in json.loads(out)) == 5  # shadow copies are not production traffic
    doc = json.loads(await _run([*base, "--shadow"], env))
    (row,) = doc["shadow"]
    assert (row["task"], row["model"], row["candidate"], row["copies"], row["compared"]) == ("qa", "big", "small", 4, 4)
    assert row["agreement"] == pytest.approx(1.0, abs=1e-3)  # the fake echoes the same text on both models
    assert row["cost_delta_per_request_usd"] < 0


async def _run(args: list[str], env: dict[str, str]) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out


async def test_daily_cap_stops_copying(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    async with OpenAIFake() as fake:
        await fake.start()
        # each copy is 5 tokens ("q N" in, "echo: q N" out) at $1/Mtok: $0.000005; a $0.000009 cap stops after two
        async with running_gateway(config_yaml(fake.base_url, ledger, cap=0.000009)) as gw, httpx.AsyncClient() as h:
            shadow = gw.app.gateway.shadow
            assert shadow is not None
            for i in range(6):
                await ask(h, gw.url, f"q {i}")
                await shadow.wait_idle()
            counts = shadow.counts
    assert counts.sent == 2 and counts.dropped_cap == 4


async def test_copies_never_delay_clients_and_are_dropped_when_busy(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    async with OpenAIFake() as fake:
        await fake.start()
        async with running_gateway(config_yaml(fake.base_url, ledger, slow_small=True)) as gw, httpx.AsyncClient() as h:
            shadow = gw.app.gateway.shadow
            assert shadow is not None
            answers = await asyncio.gather(*(ask(h, gw.url, f"q {i}") for i in range(10)))
            # every client has its whole answer while the copies (1.5 s upstream) are still running
            assert all(a.status_code == 200 for a in answers)
            assert shadow.counts.done == 0 and len(shadow._tasks) == shadow_module.MAX_IN_FLIGHT
            assert shadow.counts.sent == shadow_module.MAX_IN_FLIGHT
            assert shadow.counts.dropped_busy == 10 - shadow_module.MAX_IN_FLIGHT
            await shadow.wait_idle()
            assert shadow.counts.done == shadow_module.MAX_IN_FLIGHT


def test_rules_name_known_models() -> None:
    base = "models:\n  - {name: a, deployments: [{provider: local, model: smollm2-135m-instruct}]}\n"
    with pytest.raises(ConfigError, match=r"shadow\[0\]\.candidate: unknown model 'zz'"):
        parse_config(base + "shadow: [{task: t, model: a, candidate: zz, sample: 0.1, max_usd_per_day: 1}]\n")
    with pytest.raises(ConfigError, match="sample"):
        parse_config(base + "shadow: [{task: t, model: a, candidate: a, sample: 2, max_usd_per_day: 1}]\n")


async def test_evaluation_calls_are_not_copied(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        await fake.start()
        async with running_gateway(config_yaml(fake.base_url, tmp_path / "l.db")) as gw, httpx.AsyncClient() as http:
            body = {"model": "big", "messages": [{"role": "user", "content": "q"}], "user": "tokenomy-eval"}
            resp = await http.post(f"{gw.url}/v1/chat/completions", json=body, headers={"x-tokenomy-task": "qa"})
            assert resp.status_code == 200
            shadow = gw.app.gateway.shadow
            assert shadow is not None
            await asyncio.sleep(0.05)
            assert shadow.counts.sent == 0
            await ask(http, gw.url, "a production request")
            await shadow.wait_idle()
            assert shadow.counts.sent == 1
