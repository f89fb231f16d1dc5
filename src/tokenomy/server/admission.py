"""Admission of a request at the edge, before any of its body is parsed.

In order, each step cheap and before the next:

1. the client's address (``tokenomy.server.edge``: trusted proxies only);
2. for model calls, the API key from the headers alone: without a valid key, 401 at once, the
   body never read or parsed;
3. the body, read with a deadline (``server.body_timeout_s``, else 408) while the request counts
   as *pending* for its key (or address), at most ``server.max_pending_per_client`` at a time;
4. only then an in-flight slot: 503 when ``server.max_in_flight`` are in progress; 429 when the
   key or address has ``server.max_in_flight_per_client`` in progress.

Before all of these, as soon as the head is parsed, the server protocol asks :meth:`Admission.edge_enter`
whether to shed the request: model calls past the adaptive in-progress limit
(``tokenomy.server.overload``) get a pre-built 503 there, before any request object exists; so do,
while that limit is lowered (the gateway found itself late), model calls that already waited more
than ``server.shed_waited_ms`` in the kernel before the gateway read them (in the listen queue or a
socket buffer): they could no longer be answered in time, and serving them late would spend the
core on answers that keep the backlog -- and every request behind it -- late. With
``server.shed_wait_ms``, a model call that finds the limit reached first waits that long, first come
first served, for a slot (:meth:`Admission.edge_park`, ``tokenomy.server.slot_wait``), unparsed.

So a client that opens connections and stalls its headers or bodies holds no in-flight slot and
cannot starve anyone; the head deadline and size limits are the server protocol's
(``tokenomy.server.protocol``).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tokenomy.errors import GatewayError, overloaded
from tokenomy.server.asgi import Request
from tokenomy.server.capacity import CapacityDetector
from tokenomy.server.edge import ClientAddresses, PendingCounter, RowBudget
from tokenomy.server.overload import GradientDetector, LoopLagMonitor, OverloadDetector
from tokenomy.server.protocol import RECEIVED
from tokenomy.server.slot_wait import SlotQueue
from tokenomy.telemetry import metrics

if TYPE_CHECKING:
    from tokenomy.gateway import Gateway
    from tokenomy.server.protocol import GuardedHttpToolsProtocol

SHED, PASS, COUNTED = -1, 0, 1
"""What :meth:`Admission.edge_enter` says of a request."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SHEDDABLE = (b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings", b"/v1/messages", b"/v1/cache/")
CONTROLLERS: dict[str, type[OverloadDetector]] = {
    "backoff": OverloadDetector,
    "gradient": GradientDetector,
    "little": CapacityDetector,
}
"""``server.shed_control`` -> the class that moves the in-progress limit."""


class Refused(Exception):
    """A request refused at the edge: the error to answer and the reason it is counted under."""

    def __init__(self, error: GatewayError, reason: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason


class Admission:
    """The edge's admission steps and the gateway's in-flight accounting."""

    def __init__(self, gateway: Gateway) -> None:
        server = gateway.config.server
        self.gateway = gateway
        self.guard = gateway.guard
        self.clients = ClientAddresses(server.trusted_proxies)
        self.pending = PendingCounter(server.max_pending_per_client)
        self.rows = RowBudget(server.edge_rows_per_s)
        self.lag = LoopLagMonitor(server.shed_loop_lag_ms / 1000)
        control = CONTROLLERS[server.shed_control]
        self.overload = control(
            self.lag, server.shed_loop_lag_ms / 1000, server.shed_min_in_flight, ceiling=server.max_in_flight
        )
        self.lag.on_sample = self._tick
        self.active = 0  # model calls between their body's end and their answer (counted by the protocol)
        self._busy_at = time.monotonic()  # when :attr:`active` last changed (the in-progress integral)
        # requests that found no slot wait for one, oldest first, up to ``server.shed_wait_ms``
        self.slots: SlotQueue[GuardedHttpToolsProtocol] | None = None
        if server.shed_wait_ms > 0:
            self.slots = SlotQueue(server.shed_wait_ms / 1000, self._admit_waiter, self._shed_waiter, _waiter_gone)
        self._loop: asyncio.AbstractEventLoop | None = None  # the slot queue's clock and timer (set at first use)
        self._expiry: asyncio.TimerHandle | None = None  # fires when the longest wait runs out
        _export(self)
        self.edge_counts = False  # the server protocol counts them (else admission alone decides)
        self._shed_counter = metrics.SHED
        self.waited_s = server.shed_waited_ms / 1000
        self.max_in_flight = server.max_in_flight
        self.per_client = server.max_in_flight_per_client
        self.max_body = server.max_body_bytes
        self.body_timeout = server.body_timeout_s
        self.in_flight = 0
        self._by_client: dict[str, int] = {}
        self._loop_time: Any = None

    def edge_enter(self, path: bytes, waited: Callable[[], float] | None = None) -> int:
        """For the server protocol, as a request head is parsed: :data:`SHED` (answer 503 now; counted),
        :data:`COUNTED` (a model call: count it from its body's end, :meth:`edge_hold`) or
        :data:`PASS` (not a model call: never shed, not counted).

        Only model calls and the cache API are shed: when :attr:`active` has reached the adaptive
        limit (``tokenomy.server.overload``), or when that limit is lowered and ``waited()`` (seconds
        the request sat in the kernel before it was read) is over ``server.shed_waited_ms``. The
        in-flight cap is checked at admission, where the request's own slot is known.
        """
        if not path.startswith(SHEDDABLE) or path.startswith(b"/v1/models"):
            return PASS
        self.edge_counts = True
        overload = self.overload
        if self.active >= overload.limit:
            return self._shed(path, "shed")
        # only while the gateway's own queueing has lowered the limit (a request that waited on a
        # host busy with other work is not refused for it), and only then the getsockopt
        if overload.limit < overload.ceiling and self.waited_s and waited is not None and waited() > self.waited_s:
            return self._shed(path, "waited")
        return COUNTED

    def _shed(self, path: bytes, reason: str) -> int:
        self._shed_counter.inc()
        if self.rows.take(reason):
            self.gateway.record_shed(path.decode("latin-1"))
        return SHED

    def edge_park(self, waiter: GuardedHttpToolsProtocol, data: bytes) -> bool:
        """For the server protocol, as the first bytes of a request arrive on an idle connection:
        True when the request is to wait for a slot (``server.shed_wait_ms``; the protocol then
        keeps ``data`` unparsed and stops reading until :meth:`_admit_waiter` or
        :meth:`_shed_waiter`). Only model calls wait, only when no slot is free or others already
        wait (first come, first served), and at most as many as the limit allows in progress (more
        could not get a slot in time); the rest go on to :meth:`edge_enter` as before.
        """
        slots = self.slots
        if slots is None or (self.active < self.overload.limit and not len(slots)):
            return False
        space = data.find(b" ", 0, 16)
        if space < 0 or not data.startswith(SHEDDABLE, space + 1) or data.startswith(b"/v1/models", space + 1):
            return False
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if not slots.offer(waiter, loop.time(), max(self.overload.limit, self.overload.min_in_flight)):
            return False
        if self._expiry is None:
            self._expiry = loop.call_later(slots.wait_s, self._expire)
        return True

    def _room(self) -> bool:
        return self.active < self.overload.limit

    def _serve_waiters(self) -> None:
        """Give free slots to waiting requests and shed those whose wait ran out."""
        slots, loop = self.slots, self._loop
        if slots is not None and loop is not None and len(slots):
            slots.serve(loop.time(), self._room)

    def _expire(self) -> None:
        """The longest wait ran out: serve the queue, then wait for the next deadline."""
        self._expiry = None
        self._serve_waiters()
        slots, loop = self.slots, self._loop
        deadline = slots.next_deadline() if slots is not None else None
        if deadline is not None and loop is not None:
            self._expiry = loop.call_at(deadline, self._expire)

    def _admit_waiter(self, waiter: GuardedHttpToolsProtocol) -> None:
        waiter.unpark(COUNTED)

    def _shed_waiter(self, waiter: GuardedHttpToolsProtocol) -> None:
        self._shed(waiter.parked_path(), "wait_expired")
        waiter.unpark(SHED)

    def _integrate(self) -> None:
        """Add the calls in progress since the last change to the in-progress seconds (the
        ``little`` controller's Little's-law estimate reads them)."""
        now = time.monotonic()
        self.overload.busy_s += (self.active if self.edge_counts else self.in_flight) * (now - self._busy_at)
        self._busy_at = now

    def edge_hold(self) -> None:
        """A request :meth:`edge_enter` let through has its whole body and no answer yet: it counts in
        :attr:`active` until :meth:`edge_leave` (a request whose body is still arriving costs no CPU
        and is not counted, so stalled bodies cannot fill the limit)."""
        self._integrate()
        self.active += 1

    def edge_leave(self) -> None:
        """A request :meth:`edge_hold` counted has its answer (or its connection is gone): its slot
        goes to the longest-waiting request, if one waits."""
        self._integrate()
        self.active -= 1
        self.overload.completed += 1
        if self.slots is not None and len(self.slots):
            self._serve_waiters()

    def _tick(self) -> None:
        self.overload.tick(time.monotonic(), max(self.active, self.in_flight))
        if self.slots is not None and len(self.slots):  # the limit may have grown
            self._serve_waiters()

    def client_of(self, req: Request) -> str:
        """Set and return the request's client address."""
        peer = req.scope.get("client")
        req.client = self.clients.resolve(peer[0] if peer else None, req.headers.get("x-forwarded-for"))
        return req.client

    async def admit(self, req: Request, authenticate: bool, read_body: bool = True) -> str:
        """Run the admission steps; returns the client id holding the in-flight slot (see :meth:`release`).

        ``read_body=False`` leaves the body to a handler that streams it (a file upload, which may be
        larger than ``server.max_body_bytes``); that handler applies its own limits and deadline.

        Raises :class:`Refused`.
        """
        self._note_queue_delay(req)
        client = self.client_of(req)
        who = f"ip:{client}"
        if authenticate and self.guard.enabled:
            try:
                req.key = await self.guard.authenticate(req.headers)
            except GatewayError as exc:  # the body is never read (the server drops it, with a deadline)
                raise Refused(exc, "unauthenticated") from None
            who = f"key:{req.key.name}"
        if read_body and req.method in BODY_METHODS:
            await self._read_body(req, who)
        if self.in_flight >= self.max_in_flight or (not self.edge_counts and self.overload.overloaded(self.in_flight)):
            metrics.SHED.inc()
            raise Refused(overloaded("The gateway is at capacity; retry shortly.", 1), "shed")
        if self.per_client is not None:
            held = self._by_client.get(who, 0)
            if held >= self.per_client:
                error = GatewayError(
                    429,
                    f"Too many requests in progress for this client ({self.per_client}); retry shortly.",
                    "rate_limit_error",
                    code="too_many_in_flight",
                    headers={"retry-after": "1"},
                )
                raise Refused(error, "in_flight_per_client")
            self._by_client[who] = held + 1
        if not self.edge_counts:
            self._integrate()
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        return who

    def release(self, who: str) -> None:
        """The request holding a slot for ``who`` is done."""
        if not self.edge_counts:  # no server protocol counts answers (another ASGI server)
            self._integrate()
            self.overload.completed += 1
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()
        if self.per_client is not None:
            held = self._by_client.get(who, 1) - 1
            if held <= 0:
                self._by_client.pop(who, None)
            else:
                self._by_client[who] = held

    async def _read_body(self, req: Request, who: str) -> None:
        if not self.pending.try_take(who):
            error = GatewayError(
                429,
                f"This client already has {self.pending.limit} requests whose bodies are still arriving.",
                "rate_limit_error",
                code="too_many_pending",
                headers={"retry-after": "1", "connection": "close"},
            )
            raise Refused(error, "pending_cap")
        metrics.PENDING.inc()
        try:
            await req.read_body(self.max_body, self.body_timeout)
        except GatewayError as exc:
            raise Refused(exc, "body_timeout" if exc.status == 408 else "too_large") from None
        finally:
            self.pending.release(who)
            metrics.PENDING.dec()

    def _note_queue_delay(self, req: Request) -> None:
        state = req.scope.get("state")
        received = state.get(RECEIVED) if state else None
        if received is not None:
            if self._loop_time is None:
                self._loop_time = asyncio.get_running_loop().time
            self.overload.observe(self._loop_time() - received)


def _waiter_gone(waiter: GuardedHttpToolsProtocol) -> bool:
    return not waiter.is_parked()


def _export(admission: Admission) -> None:
    """Point the in-progress gauges at ``admission``: read when ``/metrics`` is scraped, nothing on the
    request path (a weak reference: a stopped gateway is not kept alive by the registry)."""
    ref = weakref.ref(admission)

    def read(field: Callable[[Admission], float]) -> Callable[[], float]:
        return lambda: field(a) if (a := ref()) is not None else 0.0

    metrics.read_at_scrape(metrics.IN_PROGRESS_SECONDS, read(lambda a: a.overload.busy_s))
    metrics.read_at_scrape(metrics.ANSWERED, read(lambda a: a.overload.completed))
    metrics.read_at_scrape(metrics.SLOT_WAITS_SERVED, read(lambda a: a.slots.admitted if a.slots is not None else 0))
