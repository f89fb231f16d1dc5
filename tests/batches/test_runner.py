"""The runner on its own: batch work waits while live requests are in flight."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tokenomy.batches.jsonl import check_input
from tokenomy.batches.runner import BatchRunner
from tokenomy.batches.shapes import new_batch
from tokenomy.batches.store import BatchStore
from tokenomy.config.batches import BatchesConfig
from tokenomy.pipeline.context import CallContext, Completion, Response


def embeddings_batch(tmp_path: Path, n: int) -> tuple[BatchStore, dict[str, Any]]:
    """A store holding one embeddings batch of ``n`` requests."""
    store = BatchStore(tmp_path)
    lines = [
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "m", "input": "x"}})
        for i in range(n)
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines))
    state = new_batch("file-x", "/v1/embeddings", "24h", None, 3600)
    state["request_counts"]["total"] = n
    store.add_batch("t", None, state, check_input(source, "/v1/embeddings", n + 1).items)
    return store, state


async def test_batch_work_waits_while_live_requests_are_in_flight(tmp_path: Path) -> None:
    store, state = embeddings_batch(tmp_path, 3)
    sent: list[str] = []

    async def chain(ctx: CallContext) -> Response:
        sent.append(ctx.request_id)
        return Completion({"object": "list", "data": []})

    live = 1
    runner = BatchRunner(store, chain, BatchesConfig(yield_to_live=1))
    runner.live_load = lambda: live
    await runner.start()
    await asyncio.sleep(0.3)
    assert sent == []  # a live request is in flight: the batch waits
    live = 0
    async with asyncio.timeout(5):
        while True:
            current = store.get_batch("t", state["id"])
            if current is not None and current["status"] == "completed":
                break
            await asyncio.sleep(0.02)
    assert len(sent) == 3
    await runner.close()
    store.close()


async def test_steady_live_traffic_leaves_batch_work_one_request_a_second(tmp_path: Path) -> None:
    store, state = embeddings_batch(tmp_path, 20)
    sent: list[float] = []

    async def chain(ctx: CallContext) -> Response:
        sent.append(asyncio.get_running_loop().time())
        return Completion({"object": "list", "data": []})

    polls = 0
    steady = True

    def live_load() -> int:  # nothing in flight, but a live request arrived every other poll (~10 ms)
        nonlocal polls
        polls += 1
        return int(steady and polls % 2 == 0)

    # A quiet window far longer than a poll: a loop stalled by a loaded machine must not look quiet.
    runner = BatchRunner(store, chain, BatchesConfig(yield_to_live=1, live_quiet_ms=400))
    runner.live_load = live_load
    await runner.start()
    await asyncio.sleep(2.5)
    assert 1 <= len(sent) <= 3  # the gaps between live requests are too short: only the once-a-second slot
    steady = False
    async with asyncio.timeout(10):
        while True:
            current = store.get_batch("t", state["id"])
            if current is not None and current["status"] == "completed":
                break
            await asyncio.sleep(0.02)
    assert len(sent) == 20
    await runner.close()
    store.close()
