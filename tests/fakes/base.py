"""Shared machinery for the fake upstreams: a loopback aiohttp server, request log, modes and an SSE writer."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import re
from typing import Any, NamedTuple, Self

from aiohttp import web

#: Modes every fake understands (``error_NNN`` / ``overloaded_NNN`` answer that HTTP status).
COMMON_MODES = (
    "ok",
    "error_400",
    "error_429",
    "error_500",
    "slow",
    "bad_json",
    "malformed_stream",
    "cut_stream",
    "slow_stream",
)
_ECHO_MODE = re.compile(r"echo_headers_(\d{3})")
_ERROR_MODE = re.compile(r"(?:error|overloaded)_(\d{3})")
_PIECE = re.compile(r"\s*\S+|\s+$")


def count_words(text: str) -> int:
    """The fakes' token count: whitespace-separated words."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Split ``text`` into stream/logprob tokens (``"a b"`` -> ``["a", " b"]``); they join back to ``text``."""
    return _PIECE.findall(text)


def chop(text: str, size: int = 4) -> list[str]:
    """Split ``text`` into fixed-size pieces (how tool arguments are streamed)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class Headers(dict[str, str]):
    """A plain ``dict`` of request headers with lower-case keys; lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class Recorded(NamedTuple):
    """One request the fake received: ``(path, headers, body)``; ``body`` is parsed JSON (``None`` for GET)."""

    path: str
    headers: Headers
    body: Any


class Reply(Exception):
    """Raised by handlers to answer with ``response`` straight away (errors, faults)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with ``application/json`` content type."""
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers)


class FakeServer:
    """A fake provider on ``127.0.0.1:<free port>``; subclasses add routes, auth and the error format.

    Attributes: ``url`` (``http://127.0.0.1:PORT``), ``base_url`` (what the SDK takes), ``requests``
    (list of :class:`Recorded`), ``mode`` (default mode, mutable), ``delay`` (seconds for ``slow``;
    ``slow+MODE`` waits as long, then acts as ``MODE``),
    ``stream_chunks``/``stream_interval`` (``slow_stream`` pacing), ``cancelled_streams`` (streams whose
    client went away mid-stream), ``cancelled_requests`` (any handler that saw its client go away).
    """

    base_path = ""
    request_id_header = "x-request-id"

    def __init__(
        self,
        *,
        mode: str = "ok",
        delay: float = 5.0,
        api_key: str | None = None,
        stream_chunks: int = 50,
        stream_interval: float = 0.2,
        models: tuple[str, ...] = (),
    ) -> None:
        self.mode = mode
        self.delay = delay
        self.api_key = api_key
        self.stream_chunks = stream_chunks
        self.stream_interval = stream_interval
        self.models = models
        self.requests: list[Recorded] = []
        self.cancelled_streams = 0
        self.cancelled_requests = 0
        self.answers: dict[str, str] = {}  # user text -> the exact answer to give (a labelling teacher)
        self.url = ""
        self._queue: collections.deque[str] = collections.deque()
        self._seq = 0
        self._disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The SDK ``base_url`` for this fake."""
        return self.url + self.base_path

    def add_routes(self, app: web.Application) -> None:
        """Register the provider's routes (subclasses)."""
        raise NotImplementedError

    async def start(self) -> Self:
        """Bind a free loopback port and start serving."""
        app = web.Application(middlewares=[_middleware], client_max_size=64 * 1024 * 1024)
        server: FakeServer = self
        app[FAKE_KEY] = server
        self.add_routes(app)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- knobs and observations ------------------------------------------------------------------------
    def queue_modes(self, *modes: str) -> None:
        """Use ``modes`` for the next requests, one each, before falling back to ``mode``."""
        self._queue.extend(modes)

    def reset(self) -> None:
        """Forget recorded requests, counters and queued modes; back to mode ``ok``."""
        self.requests.clear()
        self._queue.clear()
        self.cancelled_streams = self.cancelled_requests = 0
        self.mode = "ok"

    @property
    def last(self) -> Recorded:
        """The most recent request."""
        return self.requests[-1]

    async def wait_disconnects(self, count: int = 1, within: float = 5.0, *, streams: bool = True) -> bool:
        """Wait until ``cancelled_streams`` (or ``cancelled_requests``) reaches ``count``; False on timeout."""
        try:
            async with asyncio.timeout(within):
                while (self.cancelled_streams if streams else self.cancelled_requests) < count:
                    self._disconnected.clear()
                    await self._disconnected.wait()
        except TimeoutError:
            return False
        return True

    def note_disconnect(self, streaming: bool) -> None:
        """Count a handler that saw its client go away."""
        self.cancelled_requests += 1
        if streaming:
            self.cancelled_streams += 1
        self._disconnected.set()

    def next_id(self, prefix: str) -> str:
        """A deterministic, unique id such as ``chatcmpl-fake-3``."""
        self._seq += 1
        return f"{prefix}fake-{self._seq}"

    # -- per-request flow ------------------------------------------------------------------------------
    def check_auth(self, request: web.Request) -> web.StreamResponse | None:
        """An error response when the request's credentials are wrong (subclasses)."""
        return None

    def error(self, status: int, message: str | None = None, **fields: Any) -> web.Response:
        """The provider-format error response for ``status`` (subclasses)."""
        raise NotImplementedError

    def take_mode(self, request: web.Request) -> str:
        """The mode for this request: ``x-fake-mode`` header, else the queue, else ``mode``."""
        header = request.headers.get("x-fake-mode")
        if header:
            return header
        return self._queue.popleft() if self._queue else self.mode

    async def prelude(self, request: web.Request) -> tuple[Any, str]:
        """Parse and record the request, check auth, apply error/slow/fault modes; return ``(body, mode)``."""
        body: Any = None
        if request.method == "POST":
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self.requests.append(Recorded(request.path, _headers(request), raw.decode(errors="replace")))
                raise Reply(self.error(400, "We could not parse the JSON body of your request.")) from None
        self.requests.append(Recorded(request.path, _headers(request), body))
        denied = self.check_auth(request)
        if denied is not None:
            raise Reply(denied)
        mode = self.take_mode(request)
        if mode == "slow" or mode.startswith("slow+"):  # "slow+error_500": wait, then that mode
            await asyncio.sleep(float(request.headers.get("x-fake-delay", self.delay)))
            mode = mode.removeprefix("slow+")
        matched = _ERROR_MODE.fullmatch(mode)
        if matched:
            raise Reply(self.error(int(matched.group(1))))
        echoed = _ECHO_MODE.fullmatch(mode)
        if echoed:  # an upstream that quotes what it received (credentials included) in its error
            received = dict(request.headers)
            answer = self.error(int(echoed.group(1)), f"Invalid request. Received headers: {received}")
            if answer.status == 429:  # and in Retry-After, the one upstream header relayed to clients
                credentials = ("Authorization", "x-api-key", "api-key", "x-goog-api-key")
                answer.headers["retry-after"] = " ".join(received[h] for h in credentials if h in received)
            raise Reply(answer)
        streaming = isinstance(body, dict) and body.get("stream") is True
        if mode == "bad_json" or (mode == "malformed_stream" and not streaming):
            raise Reply(web.Response(text='{"id": "broken", "choices": [', content_type="application/json"))
        if mode == "cut_stream" and not streaming:
            abort(request)
            raise Reply(web.Response())
        return body, mode


def abort(request: web.Request) -> None:
    """Drop the TCP connection without finishing the response."""
    _flags.get(set()).add("cut")
    if request.transport is not None:
        request.transport.abort()


class SSE:
    """Writes a ``text/event-stream`` response, with the stream fault modes applied by :meth:`emit`."""

    def __init__(self, fake: FakeServer, request: web.Request) -> None:
        self.fake = fake
        self.request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        self.response.headers[fake.request_id_header] = fake.next_id("req_")

    async def send(self, data: Any, event: str | None = None) -> None:
        """Write one event; ``data`` is JSON-encoded unless it is already a string."""
        text = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {event}\n" if event else ""
        await self.response.write(f"{prefix}data: {text}\n\n".encode())

    async def emit(self, events: list[tuple[str | None, Any]], mode: str, fault_at: int = 2) -> web.StreamResponse:
        """Send ``events`` (``(event name or None, data)``) honouring ``mode``; return the finished response.

        ``cut_stream`` drops the connection after ``fault_at`` events; ``malformed_stream`` sends ``{not json``
        in place of event ``fault_at`` and ends the response there; ``slow_stream`` paces events;
        ``no_finish_reason`` sends every event (``[DONE]`` included) with no ``finish_reason``.
        """
        _flags.get(set()).add("streaming")
        await self.response.prepare(self.request)
        for i, (event, data) in enumerate(events):
            if mode == "slow_stream" and i:
                await asyncio.sleep(self.fake.stream_interval)
            if i == fault_at and mode == "cut_stream":
                abort(self.request)
                return self.response
            if i == fault_at and mode == "malformed_stream":
                await self.send("{not json", event or None)
                break
            if mode == "no_finish_reason" and isinstance(data, dict) and isinstance(data.get("choices"), list):
                data = {**data, "choices": [{**c, "finish_reason": None} for c in data["choices"]]}
            await self.send(data, event)
        await self.response.write_eof()
        return self.response


FAKE_KEY: web.AppKey[FakeServer] = web.AppKey("tokenomy_fake", FakeServer)
#: Per-request flags ("streaming", "cut") that handlers set for the middleware (same task, same context).
_flags: contextvars.ContextVar[set[str]] = contextvars.ContextVar("tokenomy_fake_flags")


def _headers(request: web.Request) -> Headers:
    return Headers((k.lower(), v) for k, v in request.headers.items())


@web.middleware
async def _middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    fake = request.app[FAKE_KEY]
    flags: set[str] = set()
    _flags.set(flags)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Reply as reply:
        return reply.response
    except (asyncio.CancelledError, ConnectionError):
        if "cut" not in flags:
            fake.note_disconnect("streaming" in flags)
        raise
