"""The micro-batcher with a fake batch function: batching, order, errors, load shedding, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from tests.providers.local.local_support import eventually

from tokenomy.errors import GatewayError
from tokenomy.providers.local.batcher import MicroBatcher
from tokenomy.telemetry.metrics import BATCH_SIZE, REGISTRY


class FakeModel:
    """Doubles each item; records every call, the thread it ran on, and can block or fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.threads: set[int] = set()
        self.delay = delay
        self.gate: threading.Event | None = None
        self.fail_on: int | None = None

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.threads.add(threading.get_ident())
        if self.gate is not None:
            self.gate.wait(5)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * i for i in items]


def make(model: FakeModel, **kwargs: float) -> MicroBatcher[int, int]:
    options: dict[str, float] = {"max_batch_size": 8, "max_wait_ms": 5.0, "max_queue": 1000}
    options.update(kwargs)
    return MicroBatcher(
        model,
        max_batch_size=int(options["max_batch_size"]),
        max_wait_ms=options["max_wait_ms"],
        max_queue=int(options["max_queue"]),
        name="test-batcher",
        concurrency=int(options.get("concurrency", 1)),
    )


async def test_concurrent_single_items_are_batched() -> None:
    model = FakeModel(delay=0.002)
    batcher = make(model, max_batch_size=32)
    results = await asyncio.gather(*(batcher.submit([i]) for i in range(32)))
    assert results == [[2 * i] for i in range(32)]
    assert len(model.calls) <= 4, model.calls
    assert sum(len(c) for c in model.calls) == 32
    await batcher.close()


async def test_runs_off_the_event_loop_thread() -> None:
    model = FakeModel()
    batcher = make(model)
    assert await batcher.submit([1, 2, 3]) == [2, 4, 6]
    assert threading.get_ident() not in model.threads
    await batcher.close()


async def test_large_request_is_split_and_order_preserved() -> None:
    model = FakeModel()
    batcher = make(model, max_batch_size=4)
    items = list(range(10))
    assert await batcher.submit(items) == [2 * i for i in items]
    assert max(len(c) for c in model.calls) <= 4
    assert [i for call in model.calls for i in call] == items
    await batcher.close()


async def test_mixed_concurrent_requests_get_their_own_results() -> None:
    model = FakeModel(delay=0.001)
    batcher = make(model, max_batch_size=5)
    requests = [list(range(start, start + size)) for start, size in [(0, 1), (100, 7), (200, 3), (300, 12), (400, 2)]]
    results = await asyncio.gather(*(batcher.submit(r) for r in requests))
    assert results == [[2 * i for i in r] for r in requests]
    assert all(len(c) <= 5 for c in model.calls)
    await batcher.close()


async def test_error_reaches_every_submitter_of_that_batch_only() -> None:
    model = FakeModel()
    model.fail_on = 3
    batcher = make(model, max_batch_size=8, max_wait_ms=20)
    outcomes = await asyncio.gather(*(batcher.submit([i]) for i in range(6)), return_exceptions=True)
    assert len(model.calls) == 1
    assert all(isinstance(o, ValueError) for o in outcomes)
    model.fail_on = None
    assert await batcher.submit([7]) == [14]  # the batcher keeps working
    await batcher.close()


async def test_wrong_result_count_is_an_error() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda items: items[:-1], max_batch_size=4, max_wait_ms=1, max_queue=10, name="short"
    )
    with pytest.raises(RuntimeError, match="results for"):
        await batcher.submit([1, 2])
    await batcher.close()


async def test_full_queue_answers_503_with_retry_after() -> None:
    model = FakeModel()
    model.gate = threading.Event()
    batcher = make(model, max_batch_size=2, max_wait_ms=0, max_queue=4)
    running = asyncio.ensure_future(batcher.submit([0, 1]))  # occupies the worker
    await eventually(lambda: bool(model.calls))
    waiting = asyncio.ensure_future(batcher.submit([2, 3, 4, 5]))  # fills the queue
    await asyncio.sleep(0)
    assert batcher.queue_depth == 4
    with pytest.raises(GatewayError) as info:
        await batcher.submit([6])
    assert info.value.status == 503
    assert int(info.value.headers["retry-after"]) >= 1
    model.gate.set()
    assert await running == [0, 2]
    assert await waiting == [4, 6, 8, 10]
    await batcher.close()


async def test_request_larger_than_the_queue_is_admitted_when_idle() -> None:
    model = FakeModel()
    batcher = make(model, max_batch_size=2, max_queue=3)
    assert await batcher.submit(list(range(7))) == [2 * i for i in range(7)]
    await batcher.close()


async def test_cancelled_submitter_does_not_break_the_others() -> None:
    model = FakeModel()
    model.gate = threading.Event()
    batcher = make(model, max_batch_size=2, max_wait_ms=0)
    first = asyncio.ensure_future(batcher.submit([1, 2]))  # runs, blocked on the gate
    await eventually(lambda: bool(model.calls))
    doomed = asyncio.ensure_future(batcher.submit([10, 11, 12]))
    survivor = asyncio.ensure_future(batcher.submit([20]))
    await asyncio.sleep(0.01)
    doomed.cancel()
    model.gate.set()
    assert await first == [2, 4]
    assert await survivor == [40]
    with pytest.raises(asyncio.CancelledError):
        await doomed
    ran = [i for call in model.calls for i in call]
    assert not {10, 11, 12} & set(ran)  # a cancelled submitter's waiting items never run
    await batcher.close()


async def test_single_item_waits_at_most_about_max_wait() -> None:
    batcher = make(FakeModel(), max_batch_size=64, max_wait_ms=20)
    started = time.perf_counter()
    assert await batcher.submit([5]) == [10]
    assert time.perf_counter() - started < 1.0
    await batcher.close()


async def test_batch_sizes_are_observed() -> None:
    batcher = make(FakeModel(), max_batch_size=16)
    before = REGISTRY.get_sample_value("tokenomy_local_batch_size_count", {"model": "test-batcher"}) or 0
    await asyncio.gather(*(batcher.submit([i]) for i in range(16)))
    after = REGISTRY.get_sample_value("tokenomy_local_batch_size_count", {"model": "test-batcher"}) or 0
    assert after > before
    assert BATCH_SIZE is not None
    await batcher.close()


async def test_close_fails_waiting_submitters_and_refuses_new_ones() -> None:
    model = FakeModel()
    model.gate = threading.Event()
    batcher = make(model, max_batch_size=1, max_wait_ms=0)
    running = asyncio.ensure_future(batcher.submit([1]))
    await eventually(lambda: bool(model.calls))
    waiting = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0)
    close = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    model.gate.set()
    await close
    for future in (running, waiting):
        with pytest.raises(GatewayError):
            await future
    with pytest.raises(GatewayError):
        await batcher.submit([3])


async def test_concurrency_runs_batches_side_by_side_and_no_more() -> None:
    model = FakeModel()
    model.gate = threading.Event()
    batcher = make(model, max_batch_size=2, max_wait_ms=0, concurrency=2)
    first = asyncio.ensure_future(batcher.submit([1, 2]))
    await eventually(lambda: len(model.calls) == 1)
    second = asyncio.ensure_future(batcher.submit([3, 4]))  # the second slot takes it while the first blocks
    await eventually(lambda: len(model.calls) == 2)
    third = asyncio.ensure_future(batcher.submit([5, 6, 7]))  # both slots busy: it waits
    await asyncio.sleep(0.05)
    assert len(model.calls) == 2 and batcher.queue_depth == 3
    model.gate.set()
    assert await first == [2, 4] and await second == [6, 8] and await third == [10, 12, 14]
    assert len(model.threads) == 2  # the two blocked batches ran on two worker threads
    await batcher.close()


async def test_concurrent_batches_fail_alone_and_close_stops_them_all() -> None:
    model = FakeModel(delay=0.01)
    model.fail_on = 3
    batcher = make(model, max_batch_size=2, max_wait_ms=0, concurrency=3)
    outcomes = await asyncio.gather(*(batcher.submit([i]) for i in range(6)), return_exceptions=True)
    assert isinstance(outcomes[3], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 3 and not isinstance(o, ValueError)] != []
    model.fail_on = None
    model.gate = threading.Event()
    running = [asyncio.ensure_future(batcher.submit([i])) for i in range(3)]
    await eventually(lambda: sum(len(c) for c in model.calls) >= 6 + 3 - 1)
    close = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    model.gate.set()
    await close
    for future in running:
        with pytest.raises(GatewayError):
            await future


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(FakeModel(), max_batch_size=1, max_wait_ms=1, max_queue=1, name="x", concurrency=0)
    with pytest.raises(ValueError):
        MicroBatcher(FakeModel(), max_batch_size=0, max_wait_ms=1, max_queue=1, name="x")
    with pytest.raises(ValueError):
        MicroBatcher(FakeModel(), max_batch_size=1, max_wait_ms=1, max_queue=0, name="x")
