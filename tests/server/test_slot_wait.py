"""The short wait for an in-progress slot (``server.shed_wait_ms``): first come, first served, never
past the deadline; and through a real gateway, a waiting request holds no parser state and is
either served when a slot frees or shed at its deadline."""

from __future__ import annotations

import asyncio

from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.server.slot_wait import SlotQueue
from tokenomy.telemetry import metrics

BODY = b'{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class Slots:
    """A fake in-progress count: ``free`` slots; admitting takes one."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.log: list[str] = []
        self.gone: set[str] = set()

    def admit(self, who: str) -> None:
        self.free -= 1
        self.log.append(f"admit {who}")

    def shed(self, who: str) -> None:
        self.log.append(f"shed {who}")

    def room(self) -> bool:
        return self.free > 0


def _queue(slots: Slots, wait_s: float = 0.01) -> SlotQueue[str]:
    return SlotQueue(wait_s, slots.admit, slots.shed, lambda who: who in slots.gone)


def test_waiters_get_slots_in_arrival_order_as_they_free() -> None:
    slots = Slots(free=0)
    queue = _queue(slots)
    for i, who in enumerate("abc"):
        assert queue.offer(who, now=1.0 + i * 0.001, max_waiting=8)
    queue.serve(1.004, slots.room)
    assert slots.log == [] and len(queue) == 3, "no slot free: everyone keeps waiting"
    slots.free = 2  # two calls in progress are answered
    queue.serve(1.005, slots.room)
    assert slots.log == ["admit a", "admit b"], "oldest first, one per free slot"
    assert len(queue) == 1 and queue.admitted == 2


def test_no_one_waits_past_the_deadline() -> None:
    slots = Slots(free=0)
    queue = _queue(slots, wait_s=0.01)
    queue.offer("a", now=1.0, max_waiting=8)
    queue.offer("b", now=1.006, max_waiting=8)
    queue.expire(1.009)
    assert slots.log == [], "within the deadline"
    queue.expire(1.0101)
    assert slots.log == ["shed a"], "a's 10 ms are up; b's are not"
    slots.free = 5
    queue.serve(1.0161, slots.room)
    assert slots.log == ["shed a", "shed b"], "a slot freed after b's deadline does not admit it late"
    assert queue.expired == 2 and queue.admitted == 0 and len(queue) == 0


def test_a_full_queue_refuses_and_a_waiter_that_left_is_skipped() -> None:
    slots = Slots(free=0)
    queue = _queue(slots)
    assert queue.offer("a", 1.0, max_waiting=2) and queue.offer("b", 1.0, max_waiting=2)
    assert not queue.offer("c", 1.0, max_waiting=2), "beyond max_waiting: not queued (shed at once instead)"
    slots.gone.add("a")  # its connection closed while it waited
    slots.free = 1
    queue.serve(1.001, slots.room)
    assert slots.log == ["admit b"] and slots.free == 0, "the slot goes to b; a is neither admitted nor shed"


def test_an_admission_that_frees_a_slot_again_does_not_reenter() -> None:
    slots = Slots(free=1)
    queue: SlotQueue[str] = SlotQueue(0.01, lambda who: reentrant(who), slots.shed, lambda who: False)

    def reentrant(who: str) -> None:
        slots.admit(who)
        queue.serve(1.0, slots.room)  # an admitted request answered at once would call back in

    queue.offer("a", 1.0, 8)
    queue.offer("b", 1.0, 8)
    queue.serve(1.0, slots.room)
    assert slots.log == ["admit a"] and len(queue) == 1


async def _response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_a_request_waits_for_a_slot_then_is_served_or_shed_at_its_deadline(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake
) -> None:
    """One slot (``max_in_flight: 1``), held by a call the upstream answers after 0.3 s. A second
    call waits instead of being refused, unparsed (no scope), and gets the slot when the first is
    answered; with the wait shorter than the upstream's delay, the second is shed at its deadline
    with the pre-built 503 on its kept-alive connection, counted as a shed, and the connection then
    serves the next request. Operational endpoints never wait."""
    openai_fake.mode, openai_fake.delay = "slow", 0.3
    config = proxy_config(
        openai_fake.base_url, anthropic_fake.base_url, extra_server=", max_in_flight: 1, shed_wait_ms: 5000"
    )
    try:
        async with running_gateway(config) as gw:
            admission = gw.app.admission
            slots = admission.slots
            assert slots is not None
            host, port = gw.url.removeprefix("http://").split(":")

            async def wait_for(check: object) -> None:
                for _ in range(500):
                    if check():  # type: ignore[operator]
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError("timed out")

            first_r, first_w = await asyncio.open_connection(host, int(port))
            first_w.write(REQUEST)
            await wait_for(lambda: admission.active == 1)
            second_r, second_w = await asyncio.open_connection(host, int(port))
            second_w.write(REQUEST)
            await wait_for(lambda: len(slots) == 1)
            waiter = slots._waiting[0][1]
            assert waiter.is_parked() and waiter.parked_path() == b"/v1/chat/completions"
            assert not waiter._began, "its bytes are kept unparsed while it waits"
            health_r, health_w = await asyncio.open_connection(host, int(port))
            health_w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert await _response(health_r) == b"HTTP/1.1 200 OK", "not a model call: never waits"
            assert len(slots) == 1
            assert await _response(first_r) == b"HTTP/1.1 200 OK"
            assert await _response(second_r) == b"HTTP/1.1 200 OK", "it waited for the slot instead of a 503"
            assert slots.admitted == 1 and slots.expired == 0

            def gauge(g: object) -> float:
                return float(g.collect()[0].samples[0].value)  # type: ignore[attr-defined]

            assert gauge(metrics.SLOT_WAITS_SERVED) == 1, "/metrics says so too"
            assert gauge(metrics.ANSWERED) == 2 and gauge(metrics.IN_PROGRESS_SECONDS) > 0

            expired = metrics.EDGE_REFUSALS.labels("wait_expired")
            before = expired._value.get()
            slots.wait_s = 0.05  # shorter than the upstream's 0.3 s
            first_w.write(REQUEST)
            await wait_for(lambda: admission.active == 1)
            second_w.write(REQUEST)
            assert await _response(second_r) == b"HTTP/1.1 503 Service Unavailable", "shed at its deadline"
            assert slots.expired == 1 and expired._value.get() - before == 1
            assert await _response(first_r) == b"HTTP/1.1 200 OK"
            second_w.write(REQUEST)  # the same connection, now with a slot free
            assert await _response(second_r) == b"HTTP/1.1 200 OK"
            for writer in (first_w, second_w, health_w):
                writer.close()
            await wait_for(lambda: admission.active == 0)
    finally:
        openai_fake.delay = 5.0
