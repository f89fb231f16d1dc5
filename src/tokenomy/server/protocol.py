"""uvicorn's httptools protocol with the connection-level limits uvicorn lacks.

uvicorn (0.55, httptools) bounds neither how long a client may take to send a request head nor
how large the head may grow: a client that sends one header byte every few seconds keeps its
connection (and memory) forever, and a 16 MB header is accepted. This subclass adds, per
connection:

- a **head deadline**: the request line and every header must arrive within ``header_timeout_s``
  of the connection opening, or of the previous response on a kept-alive connection; otherwise
  the connection is closed (408 when a request had begun);
- a **cap on waiting connections per address**: one client address (reverse proxies in
  ``server.trusted_proxies`` excepted) may hold ``max_waiting_per_address`` connections that have
  not yet sent a whole request head; more are closed at once;
- **head size and count limits**: more than ``max_header_bytes`` of head or more than
  ``max_headers`` headers answers 431 and closes the connection, before the app runs;
- a **deadline for a body left unread** after an early answer (a 401 before the body): the rest
  must arrive within ``body_timeout_s`` or the connection is closed;
- the moment the head was complete, in ``scope["state"]["tokenomy.received"]`` (loop time): the
  app measures its own queueing delay from it (``tokenomy.server.overload``);
- **early shedding**: when the app's admission says so (``EdgeLimits.enter``: the adaptive limit on
  model calls in progress is reached, or, while the gateway is overloaded, the request already
  waited too long in the kernel before the gateway read it), a model call is answered 503
  (Anthropic: 529) from pre-built bytes as soon as its head is parsed -- the verdict is asked as
  the first header arrives (the URL is whole then), and a request to be shed keeps none of its
  headers and never gets an ASGI scope, request object or task; no body is parsed; on a
  kept-alive connection the body is dropped as it arrives and the connection stays open;
- **how long a request waited before the gateway read it** (:meth:`GuardedHttpToolsProtocol.waited`,
  asked only while overloaded): the age of its newest bytes in the kernel's socket buffer (Linux
  ``TCP_INFO``), which for a new connection's first request includes its time in the listen queue;
- the **count of model calls in progress** for that limit (``EdgeLimits.hold``/``leave``): from the
  end of a request's body (a body still arriving costs nothing and is not counted) to its answer;
- a **wait for a slot** (``EdgeLimits.park``, ``server.shed_wait_ms``): when the first bytes of a
  request arrive on an idle connection and the admission says it is to wait (no slot free), they
  are kept unparsed and the connection is not read until the admission either gives the request
  a slot (:meth:`GuardedHttpToolsProtocol.unpark` with ``COUNTED``: parsed as usual) or sheds it
  at its deadline (``SHED``: the pre-built 503, as above) -- a waiting request has no parser
  state, scope or task (``tokenomy.server.slot_wait``).

Body deadlines are the app's (``Request.body``), so they hold under any ASGI server.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tokenomy.telemetry import metrics

_ACCEPTED = metrics.CONNECTIONS
RECEIVED = "tokenomy.received"
"""Key in ``scope["state"]``: loop time when the request head was complete."""


_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)  # Linux only

LINGER_S = 1.0
"""How long a refused connection is drained before it is closed."""


class EdgeLimits:
    """The limits a :class:`GuardedHttpToolsProtocol` enforces (set once from the config)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0  # for a body left unread after an early answer
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_waiting_per_address: int = 1024  # connections from one address that have not sent a whole head yet
    trusted: Callable[[str], bool] | None = None  # reverse proxies: exempt from the per-address cap
    # the app's admission (``Admission.edge_enter/edge_hold/edge_leave``): shed this path now? (it
    # counts what it sheds; it may ask how long the request waited before it was read) and the
    # model calls in progress, from their body's end to their answer
    enter: Callable[[bytes, Callable[[], float]], int] | None = None
    hold: Callable[[], None] | None = None
    leave: Callable[[], None] | None = None
    # the admission's ``edge_park``: should this request (its first bytes, unparsed) wait for a slot?
    park: Callable[[GuardedHttpToolsProtocol, bytes], bool] | None = None

    def __init__(self) -> None:
        self.waiting: dict[str, int] = {}  # address -> connections still waiting for their first head


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing (the refusal is in ``_refusal``)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a head deadline and head size/count limits."""

    limits = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._header_count = 0
        self._in_head = True  # reading a request head (or waiting for one)
        self._began = False  # a request line has started
        self._head_timer: asyncio.TimerHandle | None = None
        self._closing_at: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._waiting_as: str | None = None  # counted in limits.waiting until its first head is complete
        self._shedding = False  # answered 503 at the head: the body is read and dropped
        self._counted = False  # a model call the admission counts once its body is complete
        self._holding = 0  # of this connection's requests, how many count as in progress (pipelining: >1)
        self._verdict: int | None = None  # the admission's verdict on the request being parsed
        self._parked: bytes | None = None  # a request's first bytes, kept unparsed while it waits for a slot
        self._forced: int | None = None  # the verdict the admission gave a request that waited

    # -- connection ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _ACCEPTED.inc()
        address = self.client[0] if self.client else None
        limits = self.limits
        if address is not None and not (limits.trusted is not None and limits.trusted(address)):
            waiting = limits.waiting.get(address, 0)
            if waiting >= limits.max_waiting_per_address:
                metrics.EDGE_REFUSALS.labels("waiting_connections").inc()
                transport.close()  # this address already has that many connections sending nothing whole
                return
            limits.waiting[address] = waiting + 1
            self._waiting_as = address
        self._arm_head_timer()

    def _stop_waiting(self) -> None:
        address = self._waiting_as
        if address is not None:
            self._waiting_as = None
            left = self.limits.waiting.get(address, 1) - 1
            if left <= 0:
                self.limits.waiting.pop(address, None)
            else:
                self.limits.waiting[address] = left

    def connection_lost(self, exc: Exception | None) -> None:
        self._parked = None  # a waiter whose connection is gone: the queue drops it
        self._release(every=True)
        self._stop_waiting()
        self._cancel_head_timer()
        if self._closing_at is not None:
            self._closing_at.cancel()
        # uvicorn cancels its keep-alive timer only when the connection ended cleanly: after a reset
        # the timer kept the whole connection (protocol, last request, its buffers) alive for
        # ``timeout_keep_alive`` (30 s), ~9 KB per connection (bench/overhead/growth.py --reset)
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closing_at is not None:
            return  # refused: the rest is read and dropped until the connection closes
        if self._parked is not None:  # waiting for a slot (reading is paused; anything in flight joins it)
            self._parked += data
            return
        park = self.limits.park
        if (
            park is not None
            and self._forced is None
            and self._in_head
            and not self._began
            and (self.cycle is None or self.cycle.response_complete)
            and park(self, data)
        ):
            self._parked = data
            self._unset_keepalive_if_required()  # it is a request now, not an idle kept-alive connection
            self.flow.pause_reading()
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._shedding and self._head_timer is None and self._closing_at is None:  # the rest of a shed body
            self._head_timer = self.loop.call_later(self.limits.body_timeout_s, self._unread_body_timeout)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self._reject(431, f"The request head is larger than {self.limits.max_header_bytes} bytes.")

    # -- parser callbacks ----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        # uvicorn builds the ASGI scope here; that waits for the head (:meth:`_open_scope`), so a
        # request shed at its head never has one
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._verdict = None
        self._began = True
        self._header_count = 0
        if self._head_timer is None:  # a pipelined request: its own deadline
            self._arm_head_timer()

    def _open_scope(self) -> None:
        """uvicorn's ASGI scope for the request whose head was just parsed."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    def _decide(self) -> int:
        """The admission's verdict on the request being parsed (asked once, when its URL is whole)."""
        verdict = self._verdict
        if verdict is None:
            forced, self._forced = self._forced, None
            if forced is not None:  # it waited for a slot: the admission has decided already
                verdict = self._verdict = forced
            else:
                enter = self.limits.enter
                verdict = self._verdict = enter(self.url, self.waited) if enter is not None else 0
        return verdict

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"The request has more than {self.limits.max_headers} headers.")
            raise _Stop  # httptools stops parsing; uvicorn then calls send_400_response
        verdict = self._decide() if self._header_count == 1 else self._verdict
        if verdict is not None and verdict < 0:
            return  # to be shed: its headers are not kept
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._reject(*self._refusal)
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        self._in_head = False
        self._cancel_head_timer()
        verdict = self._decide()
        if verdict < 0:
            if self.cycle is None or self.cycle.response_complete:
                self._shed()
            else:  # a pipelined request: its answer must wait its turn behind the one in progress
                self._open_scope()
                app, self.app = self.app, _shed_app(self.url)
                try:
                    super().on_headers_complete()
                finally:
                    self.app = app
            return
        self._counted = verdict > 0
        self._open_scope()
        self.scope["state"][RECEIVED] = self.loop.time()
        super().on_headers_complete()

    # -- waiting for a slot (``EdgeLimits.park``) ------------------------------------------------------
    def is_parked(self) -> bool:
        """Whether a request waits for a slot on this connection (and the connection is still there)."""
        return self._parked is not None and not self.transport.is_closing()

    def parked_path(self) -> bytes:
        """The path of the waiting request (from its request line)."""
        data = self._parked or b""
        start = data.find(b" ") + 1
        end = data.find(b" ", start)
        return data[start:end] if start and end > start else b""

    def unpark(self, verdict: int) -> None:
        """The waiting request's turn: parse it with the admission's ``verdict`` (``COUNTED``: it has a
        slot; ``SHED``: its deadline passed, answer the pre-built 503) and read the connection again."""
        data, self._parked = self._parked, None
        if data is None or self.transport.is_closing():
            return
        self._forced = verdict
        self.flow.resume_reading()
        self.data_received(data)
        self._forced = None  # used by the first request (or not at all, if the bytes began none)

    def waited(self) -> float:
        """Seconds the newest bytes of the request being parsed sat in the kernel before the gateway
        read them (0 where the kernel does not say).

        Linux's ``tcpi_last_data_recv`` (milliseconds since the connection last received data),
        read while the request is parsed: the request's own wait in the socket buffer, and for the
        first request on a new connection its wait in the listen queue as well (a client sends its
        request as soon as the handshake completes, before the gateway accepts). One
        ``getsockopt``, about 1-2 µs: admission asks only while the gateway is overloaded.
        """
        if _TCP_INFO is None:
            return 0.0
        try:
            info = self.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 56)
        except (AttributeError, OSError):
            return 0.0  # not TCP (a Unix socket), or the connection is gone
        return int.from_bytes(info[52:56], sys.byteorder) / 1000  # struct tcp_info: tcpi_last_data_recv

    def _shed(self) -> None:
        """Answer 503 (Anthropic: 529) from pre-built bytes: no request object, no task, no body read.

        On a kept-alive connection the body is dropped as it arrives (with the body deadline) and
        the connection serves the next request: a shed costs the client no new handshake.
        """
        parser = self.parser
        keep = parser.should_keep_alive() and parser.get_http_version() != "1.0"
        self.transport.write(_SHED_BYTES[self.url.startswith(b"/v1/messages"), keep])
        self._shedding = True  # whatever of the body is in this read is dropped
        if not keep:
            self._linger()

    def on_body(self, body: bytes) -> None:
        if not self._shedding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._shedding:
            self._shedding = False
            self._in_head, self._began, self._head_bytes = True, False, 0
            if self._closing_at is None:
                self._arm_head_timer()  # the next request's head (or the idle deadline)
            return
        super().on_message_complete()
        self._in_head, self._began, self._head_bytes = True, False, 0
        if self._counted:
            self._counted = False
            if not self.cycle.response_complete and self.limits.hold is not None:
                self._holding += 1
                self.limits.hold()

    def _release(self, every: bool = False) -> None:
        """One answer is complete (``every``: the connection is gone): release what it counted."""
        leave = self.limits.leave
        while self._holding and leave is not None:
            self._holding -= 1
            leave()
            if not every:
                return

    def on_response_complete(self) -> None:
        self._release()
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._in_head:
            self._arm_head_timer()  # the next request's head must come within the deadline too
        else:  # answered before its body was read (a 401, say): the rest must come in time too
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(self.limits.body_timeout_s, self._unread_body_timeout)

    # -- limits ----------------------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._began or self._head_bytes:
            self._reject(408, "The request head did not arrive in time.")
        else:
            self.transport.close()  # an idle connection: nothing to answer

    def _unread_body_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _reject(self, status: int, message: str) -> None:
        """Answer ``status`` with a short text body and close the connection.

        The close lingers for up to a second, reading and dropping what the client still sends:
        closing a socket with unread data resets it, and the client would never see the answer.
        """
        self._cancel_head_timer()
        body = message.encode()
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self._linger()

    def _linger(self) -> None:
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._closing_at = self.loop.call_later(LINGER_S, self.transport.close)


def _shed_body(anthropic: bool) -> bytes:
    if anthropic:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": SHED_MESSAGE}}
    else:
        error = {"error": {"message": SHED_MESSAGE, "type": "server_overloaded", "param": None, "code": "overloaded"}}
    return orjson.dumps(error)


SHED_MESSAGE = "The gateway is at capacity; retry shortly."
_SHED = {False: (503, _shed_body(False)), True: (529, _shed_body(True))}


def _shed_bytes(anthropic: bool, keep_alive: bool) -> bytes:
    status, body = _SHED[anthropic]
    head = STATUS_LINE[status] + b"content-type: application/json\r\nretry-after: 1\r\n"
    head += b"content-length: %d\r\n" % len(body)
    return head + (b"" if keep_alive else b"connection: close\r\n") + b"\r\n" + body


_SHED_BYTES = {(a, k): _shed_bytes(a, k) for a in (False, True) for k in (False, True)}
"""The whole shed response by (Anthropic path?, keep-alive?)."""


def _shed_app(url: bytes) -> Callable[..., Awaitable[None]]:
    status, body = _SHED[url.startswith(b"/v1/messages")]
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]

    async def shed(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return shed
