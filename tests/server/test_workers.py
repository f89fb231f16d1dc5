"""``tokenomy serve --workers 2``: one port, one writer, state that holds across the workers.

Real processes: the supervisor, two workers sharing the port with SO_REUSEPORT, the writer
process; new connections for every request so the kernel spreads them over both workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import yaml
from tests.budgets.helpers import admin_headers, gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.ports import free_port
from tests.support.redis import RedisServer

from tokenomy.keys.record import hash_key

KEY = "sk-workers-test"


def children(pid: int, marker: bytes) -> list[int]:
    """Child processes of ``pid`` whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid and marker in cmdline:
                found.append(int(entry))
    return found


@contextlib.asynccontextmanager
async def supervisor(config_yaml: str, home: Path, workers: int = 2) -> AsyncIterator[tuple[str, int]]:
    """``serve --workers N``; yields (url, supervisor pid); SIGTERM at the end (everything is stopped)."""
    path = home / "gw.yaml"
    config = yaml.safe_load(config_yaml)
    config.setdefault("server", {})["shed_loop_lag_ms"] = 0  # lag on a busy CI machine says nothing here
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tokenomy.cli import main; main()", "serve", "--config", str(path),
        "--port", str(port), "--workers", str(workers), env={**os.environ, "TOKENOMY_HOME": str(home)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/healthz") as resp:
                        if resp.status == 200 and len(children(proc.pid, b"tokenomy.server.workers")) == workers:
                            break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the workers did not start")
            # one worker answered; the other may still be loading. A burst on new connections reaches
            # both (SO_REUSEPORT spreads them), so once a whole burst is answered both serve.
            for _ in range(600):
                if await _all_answered(http, f"{url}/healthz", 16):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the workers did not all start serving")
        yield url, proc.pid
    except BaseException as exc:  # show what the supervisor and its workers logged
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 90)
        exc.add_note("the gateway's log:\n" + stderr.decode()[-6000:])
        raise
    else:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 90)
            assert proc.returncode == 0, stderr.decode()[-2000:]


async def _all_answered(http: aiohttp.ClientSession, url: str, n: int) -> bool:
    """Whether ``n`` concurrent GETs, each on a new connection, all answer 200."""

    async def one() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url, headers={"connection": "close"}) as resp:
                return resp.status == 200
        return False

    return all(await asyncio.gather(*(one() for _ in range(n))))


async def post(url: str, key: str | None = None, content: str = "hi") -> tuple[int, str]:
    """One chat completion on a new connection: (status, x-request-id)."""
    headers = {"x-request-id": f"r-{uuid.uuid4().hex[:12]}"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = {"model": "fast", "messages": [{"role": "user", "content": content}], "max_tokens": 8}
    # a new connection each time: SO_REUSEPORT picks a worker per connection
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        await r.read()
        return r.status, headers["x-request-id"]


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        return await resp.text()


def ledger_rows(home: Path) -> list[tuple[str, int, int, float]]:
    conn = sqlite3.connect(home / "ledger.db")
    rows = conn.execute("SELECT client_request_id, prompt_tokens, completion_tokens, cost_usd FROM requests").fetchall()
    conn.close()
    return rows


async def test_workers_share_one_ledger_metrics_add_up_and_a_killed_worker_is_replaced(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, admin=False)
    async with supervisor(config, tmp_path) as (url, pid):
        answered = [rid for status, rid in await asyncio.gather(*(post(url) for _ in range(120))) if status == 200]
        assert len(answered) == 120
        await asyncio.sleep(1.0)  # token and cost sums reach the counters every 0.25 s
        text = await scrape(url)
        assert metric_sum(text, "tokenomy_requests_total", status="2xx") == 120
        # upstream attempts are plain integers in each worker, handed to the shared files every 0.25 s
        assert metric_sum(text, "tokenomy_route_attempts_total", outcome="ok") == 120
        for _ in range(100):  # the writer stores every flush interval
            rows = ledger_rows(tmp_path)
            if len(rows) >= 120:
                break
            await asyncio.sleep(0.05)
        assert sorted(r[0] for r in rows) == sorted(answered)
        tokens = sum(r[1] + r[2] for r in rows)
        assert (
            metric_sum(text, "tokenomy_tokens_total", direction="input")
            + metric_sum(text, "tokenomy_tokens_total", direction="output")
            == tokens
        )
        assert abs(metric_sum(text, "tokenomy_cost_usd_total") - sum(r[3] for r in rows)) < 1e-9

        workers = children(pid, b"tokenomy.server.workers")
        os.kill(workers[0], signal.SIGKILL)
        for _ in range(200):
            now = children(pid, b"tokenomy.server.workers")
            if len(now) == 2 and workers[0] not in now:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the killed worker was not replaced")
        more = [rid for status, rid in await asyncio.gather(*(post(url) for _ in range(60))) if status == 200]
        assert len(more) == 60
        text = await scrape(url)
        assert 'tokenomy_in_flight_requests{pid="' in text  # gauges: one series per live process ...
        assert f'pid="{workers[0]}"' not in text  # ... and the killed worker's went with it
    rows = ledger_rows(tmp_path)  # after a clean stop: everything stored
    assert sorted(r[0] for r in rows) == sorted(answered + more)
    assert len({r[0] for r in rows}) == len(rows)


async def test_budget_holds_and_revocation_reaches_every_worker(
    openai_fake: OpenAIFake, redis_server: RedisServer, tmp_path: Path
) -> None:
    name = f"w-{uuid.uuid4().hex[:8]}"
    limit = 0.15  # each request reserves ~$0.026 and costs ~$0.011 (see tests/budgets)
    keys = [{"name": name, "sha256": hash_key(KEY), "budget": {"usd_per_day": limit}}]
    budgets = {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{redis_server.url}}}"}
    key_store = {"path": str(tmp_path / "keys.db"), "refresh_s": 3600}  # changes reach the workers at once
    config = gateway_config(openai_fake.base_url, tmp_path, keys=keys, budgets=budgets, key_store=key_store)
    openai_fake.mode, openai_fake.delay = "slow", 0.3  # many requests in flight at once, on both workers
    async with supervisor(config, tmp_path) as (url, _pid):
        statuses = [s for s, _ in await asyncio.gather(*(post(url, KEY, f"n{i}") for i in range(60)))]
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 5, statuses
        openai_fake.mode, openai_fake.delay = "ok", 0.0

        async with aiohttp.ClientSession() as http:  # a key created at run time, then revoked
            async with http.post(f"{url}/admin/keys", json={"name": f"{name}-rt"}, headers=admin_headers()) as r:
                assert r.status == 201, await r.text()
                created = await r.json()
            runtime_key, key_id = created["key"], created["id"]
            assert {s for s, _ in await asyncio.gather(*(post(url, runtime_key) for _ in range(20)))} == {200}
            async with http.delete(f"{url}/admin/keys/{key_id}", headers=admin_headers()) as r:
                assert r.status == 200, await r.text()
        assert {s for s, _ in await asyncio.gather(*(post(url, runtime_key) for _ in range(30)))} == {401}
    conn = sqlite3.connect(tmp_path / "ledger.db")
    [(spent, admitted)] = conn.execute(
        "SELECT sum(cost_usd), count(*) FROM requests WHERE api_key = ? AND status = 200", (name,)
    ).fetchall()
    conn.close()
    assert admitted == statuses.count(200)
    assert spent <= limit + 1e-9, f"spent {spent} over the {limit} budget across workers"


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def test_workers_stop_when_the_supervisor_is_killed(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = gateway_config(openai_fake.base_url, tmp_path, admin=False)
    async with supervisor(config, tmp_path) as (url, pid):
        workers = children(pid, b"tokenomy.server.workers")
        assert len(workers) == 2 and (await post(url))[0] == 200
        os.kill(pid, signal.SIGKILL)  # no chance to stop its workers
        for _ in range(1200):
            alive = [w for w in workers if running(w)]
            if not alive:
                break
            await asyncio.sleep(0.05)
        assert not alive, f"workers {alive} outlived their supervisor (they would keep the port)"


async def chat(url: str, key: str, content: str, model: str = "fast") -> tuple[int, str | None]:
    """One deterministic (cacheable) chat completion on a new connection: (status, the answer's id)."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8, "temperature": 0}
    headers = {"authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        data = await r.json()
        return r.status, data.get("id") if r.status == 200 else None


async def test_an_invalidation_reaches_every_workers_level_one(
    openai_fake: OpenAIFake, redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = [{"name": f"w-{uuid.uuid4().hex[:8]}", "sha256": hash_key(KEY)}]
    budgets = {"store": "redis", "redis_url": f"${{T_NO_SUCH_URL:-{redis_server.url}}}"}
    base = gateway_config(openai_fake.base_url, tmp_path, keys=keys, budgets=budgets)
    config = yaml.safe_load(base)
    config["cache"] = {"exact": {"path": str(tmp_path / "cache.db")}}
    async with supervisor(yaml.safe_dump(config), tmp_path) as (url, _pid):
        # the same question on 40 new connections: both workers answer it, from upstream or a cache level
        before = {rid for _ in range(2) for s, rid in await asyncio.gather(*(chat(url, KEY, "q") for _ in range(20)))}
        assert None not in before
        async with (
            aiohttp.ClientSession() as http,
            http.delete(f"{url}/v1/cache?all=true", headers=admin_headers()) as r,
        ):
            assert r.status == 200, await r.text()
        after = [rid for s, rid in await asyncio.gather(*(chat(url, KEY, "q") for _ in range(20)))]
        assert None not in after and not before & set(after), "a worker served an answer cached before the invalidation"


async def test_key_and_deployment_rate_limits_hold_for_the_whole_gateway_without_redis(
    openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    key_rpm, dep_rpm = 6, 12
    config = yaml.safe_load(
        gateway_config(openai_fake.base_url, tmp_path, keys=[{"name": "ci", "sha256": hash_key(KEY)}])
    )
    config["routing"] = {"limits": {"max_wait_ms": 0}}
    config["models"][1]["deployments"][0]["rpm"] = dep_rpm
    async with supervisor(yaml.safe_dump(config), tmp_path) as (url, _pid):
        async with aiohttp.ClientSession() as http:  # budgets stay in memory: a key may have limits, not a budget
            body = {"name": "budgeted", "budget": {"usd_per_day": 1}}
            async with http.post(f"{url}/admin/keys", json=body, headers=admin_headers()) as r:
                assert r.status == 400 and (await r.json())["error"]["param"] == "budget"
            async with http.post(
                f"{url}/admin/keys", json={"name": "rt", "rpm": key_rpm}, headers=admin_headers()
            ) as r:
                assert r.status == 201, await r.text()
                limited = (await r.json())["key"]
        for key, model, rpm in ((limited, "fast", key_rpm), (KEY, "cheap", dep_rpm)):
            start = time.monotonic()
            statuses = [
                s for s, _ in await asyncio.gather(*(chat(url, key, f"{model}{i}", model) for i in range(3 * rpm)))
            ]
            refilled = (time.monotonic() - start) * rpm / 60
            assert set(statuses) <= {200, 429}
            # each worker counting alone would admit rpm requests, twice rpm in all
            assert rpm <= statuses.count(200) <= rpm + refilled, (model, statuses)
