"""``serve --workers 2``: the in-progress gauges read at scrape time add up over the workers.

As found: ``tokenomy_in_progress_seconds``, ``tokenomy_model_calls_answered`` and
``tokenomy_slot_waits_served`` were set only by a function called at scrape time, which the
collector that sums the workers' metric files never calls: under ``--workers`` all three read 0.
Real processes (supervisor, two workers sharing the port, the writer); a new connection per request.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import yaml
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import OpenAIFake
from tests.server.test_workers import metric_sum, post, scrape, supervisor

DELAY = 1.0  # every request of the burst reaches its worker while that worker's first is still in progress
BURST = 5


def per_worker(text: str, name: str) -> dict[str, float]:
    """``{pid: value}`` of a gauge's series (one per live process under ``--workers``)."""
    return {pid: float(v) for pid, v in re.findall(rf'^{name}{{pid="(\d+)"}} (\S+)$', text, re.MULTILINE)}


async def test_in_progress_gauges_sum_over_the_workers(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = yaml.safe_load(gateway_config(openai_fake.base_url, tmp_path, admin=False))
    # one call in progress per worker; the others wait for it (up to 10 s) instead of getting 503
    config["server"] = {**config.get("server", {}), "max_in_flight": 1, "shed_wait_ms": 10_000}
    async with supervisor(yaml.safe_dump(config), tmp_path) as (url, _pid):
        openai_fake.mode, openai_fake.delay = "slow", DELAY
        try:
            burst = [status for status, _ in await asyncio.gather(*(post(url) for _ in range(BURST)))]
        finally:
            openai_fake.mode, openai_fake.delay = "ok", 5.0
        await asyncio.sleep(0.6)  # each worker writes its readings to its file every 0.25 s
        after_burst = await scrape(url)
        sequential = [status for status, _ in [await post(url) for _ in range(10)]]
        await asyncio.sleep(0.6)
        text = await scrape(url)
    assert burst == [200] * BURST and sequential == [200] * 10
    answered = per_worker(after_burst, "tokenomy_model_calls_answered")
    waits = per_worker(after_burst, "tokenomy_slot_waits_served")
    busy = per_worker(after_burst, "tokenomy_in_progress_seconds")
    # every process has a series (the supervisor and the ledger writer show 0): the workers' add up
    assert sum(answered.values()) == BURST, after_burst
    for pid, calls in answered.items():  # each worker's first call ran at once, the rest waited their turn
        assert waits[pid] == max(0.0, calls - 1), (pid, calls, waits)
        assert busy[pid] >= 0.9 * DELAY * calls, "each slow call spent about DELAY in progress"
    assert metric_sum(text, "tokenomy_model_calls_answered") == BURST + 10, "every call, whichever worker answered"
    assert metric_sum(text, "tokenomy_slot_waits_served") == sum(waits.values()), "no waits after the burst"
