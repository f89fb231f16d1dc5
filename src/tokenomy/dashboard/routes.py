"""HTTP handlers of the dashboard: the page and its static files (no data in them, no key needed) and
the JSON API under ``/dashboard/api/`` (every call needs the right key; tenant keys see only their tenant).

The page loads only same-origin scripts (a Content-Security-Policy forbids inline ones), and the
scripts insert ledger values as text, never as HTML.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from tokenomy.dashboard import api, explorer
from tokenomy.dashboard.access import Viewer, viewer
from tokenomy.dashboard.budgets import budget_use
from tokenomy.dashboard.explorer import Filters
from tokenomy.dashboard.semantic import semantic_precision
from tokenomy.errors import GatewayError, invalid_request, not_found
from tokenomy.gateway import Gateway
from tokenomy.ledger.stores import StoreUnavailable, store_for
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.pipeline.guard import presented_key
from tokenomy.reports.model import Window
from tokenomy.reports.query import ReportError
from tokenomy.reports.timeparse import parse_time
from tokenomy.server.asgi import Request, encode_headers, send_bytes

PREFIX = "/dashboard/"
STATIC = {
    "app.js": b"text/javascript; charset=utf-8",
    "chart.js": b"text/javascript; charset=utf-8",
    "style.css": b"text/css; charset=utf-8",
    "chart.css": b"text/css; charset=utf-8",
}
SECURITY = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_WINDOW = {"since", "until"}
_FILTERS = {"task", "model", "key", "status"}
_stores: weakref.WeakKeyDictionary[Gateway, LedgerStore] = weakref.WeakKeyDictionary()


def _asset(name: str) -> bytes:
    return resources.files("tokenomy.dashboard").joinpath("static", name).read_bytes()


async def page(gw: Gateway, req: Request) -> None:
    """``GET /dashboard``: the single page (it asks for a key and loads its data from the API)."""
    del gw
    await send_bytes(req.send, 200, _asset("index.html"), b"text/html; charset=utf-8", encode_headers(SECURITY))


async def under(gw: Gateway, req: Request) -> None:
    """``GET /dashboard/static/<file>`` and ``GET /dashboard/api/<name>``."""
    rest = req.path[len(PREFIX) :]
    if rest.startswith("static/") and rest[len("static/") :] in STATIC:
        name = rest[len("static/") :]
        await send_bytes(req.send, 200, _asset(name), STATIC[name], encode_headers(SECURITY))
        return
    if rest == "api/whoami" and presented_key(req.headers) is None:
        # the page asks first whether it needs a key; the answer holds no data
        try:
            who = await viewer(gw, req.headers)
        except GatewayError:
            await send_bytes(req.send, 200, orjson.dumps({"role": None, "needs_key": True}), headers=_headers(req))
            return
    if rest.startswith("api/") and rest[len("api/") :] in _API:
        who = await viewer(gw, req.headers)
        handler, allowed = _API[rest[len("api/") :]]
        query = _query(req.query, allowed)
        body, content_type = await handler(gw, who, query)
        await send_bytes(req.send, 200, body, content_type, _headers(req))
        return
    raise not_found(f"Unknown dashboard path {req.path!r}.", code="unknown_url")


def _headers(req: Request) -> list[tuple[bytes, bytes]]:
    return encode_headers({**SECURITY, "x-request-id": req.request_id})


def _query(raw: str, allowed: set[str]) -> dict[str, str]:
    parsed = parse_qs(raw, keep_blank_values=True)
    unknown = sorted(set(parsed) - allowed)
    if unknown:
        raise invalid_request(f"Unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.")
    return {k: v[-1] for k, v in parsed.items() if v[-1] != ""}


def _window(query: dict[str, str], who: Viewer) -> Window:
    bounds: list[float | None] = []
    for name in ("since", "until"):
        text = query.get(name)
        try:
            bounds.append(None if text is None else parse_time(text, end_of_day=name == "until"))
        except ValueError as exc:
            raise invalid_request(str(exc), param=name) from None
    since, until = bounds
    if since is not None and until is not None and since >= until:
        raise invalid_request("since must be earlier than until", param="since")
    return Window(since, until, tenant=who.tenant)


def _filters(query: dict[str, str]) -> Filters:
    status = query.get("status")
    if status not in (None, "ok", "error"):
        raise invalid_request("status must be ok or error", param="status")
    return Filters(query.get("task"), query.get("model"), query.get("key"), status)


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise invalid_request(f"{name} must be a whole number from {low} to {high}", param=name)
    return int(text)


def _store(gw: Gateway) -> LedgerStore:
    if gw.config.ledger.store == "none":
        raise not_found("The ledger is off (ledger.store: none): the dashboard has no records to show.")
    store = _stores.get(gw)
    if store is None:
        try:
            store = _stores[gw] = store_for(gw.config.ledger)
        except StoreUnavailable as exc:
            raise GatewayError(503, str(exc), "server_error", code="ledger_unavailable") from None
    return store


async def _blocking(fn: Callable[[], Any], empty: Any = None) -> Any:
    """Run a ledger query in a worker thread; a ledger not created yet reads as ``empty``."""
    try:
        return await asyncio.to_thread(fn)
    except (StoreUnavailable, ReportError) as exc:
        if empty is not None and "no ledger at" in str(exc):
            return empty
        raise GatewayError(503, str(exc), "server_error", code="ledger_unavailable") from None


def _json(data: Any) -> tuple[bytes, bytes]:
    return orjson.dumps(data), b"application/json"


async def _whoami(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    del query
    store = gw.config.ledger.store
    return _json({"role": who.role, "tenant": who.tenant, "key": who.key_name, "ledger": store})


async def _overview(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window = _store(gw), _window(query, who)
    return _json(await _blocking(lambda: api.overview(store, window), api.empty_overview()))


async def _prompts(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window = _store(gw), _window(query, who)
    return _json(await _blocking(lambda: api.top_prompts(store, window), {"data": []}))


async def _advice(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window = _store(gw), _window(query, who)
    empty = {"recommendations": [], "notes": ["no records yet"], "records": 0, "spend_usd": 0.0}
    return _json(await _blocking(lambda: api.advice(store, gw.config, window), empty))


async def _requests(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window, filters = _store(gw), _window(query, who), _filters(query)
    limit, offset = _int(query, "limit", 50, 1, 1000), _int(query, "offset", 0, 0, 10**9)
    return _json(await _blocking(lambda: api.requests(store, window, filters, limit, offset), {"total": 0, "data": []}))


async def _csv(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window, filters = _store(gw), _window(query, who), _filters(query)
    text = await _blocking(lambda: api.requests_csv(store, window, filters), "")
    return str(text).encode(), b"text/csv; charset=utf-8"


async def _record(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window = _store(gw), _window({}, who)
    request_id = unquote(query.get("id", ""))
    if not request_id:
        raise invalid_request("give the record's id: ?id=<request id>", param="id")
    found = await _blocking(lambda: explorer.record(store, window, request_id, with_prompt=who.role == "admin"), {})
    if not found:
        raise not_found(f"No record {request_id!r} here.", param="id")
    return _json(found)


async def _budgets(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    del query
    return _json(await budget_use(gw, who))


async def _semantic(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    del query
    return _json(semantic_precision(gw, who))


async def _choices(gw: Gateway, who: Viewer, query: dict[str, str]) -> tuple[bytes, bytes]:
    store, window = _store(gw), _window(query, who)
    empty: dict[str, list[str]] = {"task": [], "model": [], "key": []}
    return _json(await _blocking(lambda: explorer.choices(store, window), empty))


_API: dict[str, tuple[Callable[[Gateway, Viewer, dict[str, str]], Any], set[str]]] = {
    "whoami": (_whoami, set()),
    "overview": (_overview, _WINDOW),
    "advice": (_advice, _WINDOW),
    "prompts": (_prompts, _WINDOW),
    "requests": (_requests, _WINDOW | _FILTERS | {"limit", "offset"}),
    "requests.csv": (_csv, _WINDOW | _FILTERS),
    "record": (_record, {"id"}),
    "choices": (_choices, _WINDOW),
    "budgets": (_budgets, set()),
    "semantic": (_semantic, set()),
}
