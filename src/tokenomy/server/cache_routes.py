"""The cache API: named intermediate results, and admin invalidation.

``PUT|GET|DELETE /v1/cache/{namespace}/{key}`` keep raw bytes per tenant (authenticated like
model calls); ``DELETE /v1/cache?model=&task=&namespace=&tenant=`` (admin key only) invalidates
cached model answers and intermediate results. See docs/cache-api.md.
"""

from __future__ import annotations

import math
import re
import time
import weakref
from urllib.parse import parse_qs

from tokenomy.cache.kv import DEFAULT_CONTENT_TYPE, KvService, check_names, check_ttl, too_large, unavailable
from tokenomy.cache.stores.base import CacheUnavailable
from tokenomy.errors import GatewayError, invalid_request, not_found
from tokenomy.gateway import Gateway
from tokenomy.pipeline.guard import GuardStage
from tokenomy.server.admin_routes import require_admin
from tokenomy.server.asgi import Request, encode_headers, send_bytes, send_json

PREFIX = "/v1/cache/"
TTL_HEADER = "x-tokenomy-ttl"
_TENANT = re.compile(r"^[^/\x00-\x1f\x7f]{1,128}$")
_INVALIDATE_PARAMS = frozenset({"model", "task", "namespace", "tenant", "all"})


class _Parts:
    """What the cache routes need from a gateway, built once per gateway."""

    def __init__(self, gw: Gateway) -> None:
        cache = gw.config.cache
        self.kv = KvService(
            gw.cache_store,
            shared_namespaces=cache.shared_namespaces,
            default_ttl_s=cache.exact.ttl_s,
            max_value_bytes=cache.exact.max_entry_bytes,
        )
        self.guard = next((s for s in gw.stages if isinstance(s, GuardStage)), GuardStage(gw.config.auth))
        self.body_limit = min(cache.exact.max_entry_bytes, gw.config.server.max_body_bytes)


_parts: weakref.WeakKeyDictionary[Gateway, _Parts] = weakref.WeakKeyDictionary()


def _for(gw: Gateway) -> _Parts:
    parts = _parts.get(gw)
    if parts is None:
        parts = _parts[gw] = _Parts(gw)
    return parts


async def kv(gw: Gateway, req: Request) -> None:
    """``PUT|GET|DELETE /v1/cache/{namespace}/{key}``."""
    namespace, _, key = req.path[len(PREFIX) :].partition("/")
    if not key or "/" in key:
        raise not_found(f"Unknown path {req.path!r}: use /v1/cache/{{namespace}}/{{key}}.", code="unknown_url")
    parts = _for(gw)
    tenant = await _tenant(parts.guard, req)
    check_names(namespace, key)
    ids = req.id_headers()
    if req.method == "GET":
        item = await parts.kv.get(tenant, namespace, key)
        if item is None:
            raise GatewayError(
                404,
                f"No cached value for key {key!r} in namespace {namespace!r}.",
                code="cache_miss",
                headers={"x-tokenomy-cache": "miss"},
            )
        remaining = max(0, math.ceil(item.expires - time.time()))
        headers = {**ids, "x-tokenomy-cache": "hit", TTL_HEADER: str(remaining)}
        await send_bytes(req.send, 200, item.value, item.content_type.encode("latin-1"), encode_headers(headers))
    elif req.method == "PUT":
        ttl = _ttl(req)
        try:
            value = await req.body(parts.body_limit)
        except GatewayError as exc:
            raise too_large(parts.body_limit) if exc.status == 413 else exc from None
        content_type = req.headers.get("content-type") or DEFAULT_CONTENT_TYPE
        if len(content_type) > 200:
            raise invalid_request("The content-type is longer than 200 characters.", param="content-type")
        item = await parts.kv.put(tenant, namespace, key, value, ttl, content_type)
        body = {"namespace": namespace, "key": key, "bytes": len(value), "expires_at": round(item.expires, 3)}
        await send_json(req.send, 200, body, encode_headers(ids))
    else:  # DELETE
        await parts.kv.delete(tenant, namespace, key)
        await req.send({"type": "http.response.start", "status": 204, "headers": encode_headers(ids)})
        await req.send({"type": "http.response.body", "body": b""})


async def invalidate(gw: Gateway, req: Request) -> None:
    """``DELETE /v1/cache?model=&task=&namespace=&tenant=`` (admin): ``{"deleted": N}``."""
    require_admin(gw, req)
    query = {name: values[-1] for name, values in parse_qs(req.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _INVALIDATE_PARAMS)
    if unknown:
        raise invalid_request(f"Unknown parameter(s) {', '.join(unknown)}; use model, task, namespace, tenant or all.")
    model, task = query.get("model") or None, query.get("task") or None
    namespace = _namespace(gw, query.get("namespace"), query.get("tenant"))
    if model is None and task is None and namespace is None and query.get("all") != "true":
        raise invalid_request(
            "Name what to invalidate (model=, task=, namespace=, tenant=), or all=true for everything."
        )
    try:
        deleted = await gw.cache.invalidate(namespace=namespace, model=model, task=task)
    except CacheUnavailable as exc:
        raise unavailable(f"The cache store is unavailable ({exc}); retry shortly.") from exc
    await send_json(req.send, 200, {"deleted": deleted}, encode_headers(req.id_headers()))


async def _tenant(guard: GuardStage, req: Request) -> str:
    """The caller's tenant, authenticated as for model calls (open gateway: ``default``)."""
    if not guard.enabled:
        return "default"
    vkey = await guard.authenticate(req.headers)  # config, SQLite- and Redis-stored keys alike
    return vkey.tenant or vkey.name


def _ttl(req: Request) -> float | None:
    raw = None
    if req.query:
        values = parse_qs(req.query).get("ttl")
        raw = values[-1] if values else None
    raw = raw if raw is not None else req.headers.get(TTL_HEADER)
    if raw is None:
        return None
    try:
        return check_ttl(float(raw))
    except ValueError:
        raise invalid_request(f"Invalid ttl {raw[:32]!r}: give seconds as a number.", param="ttl") from None


def _namespace(gw: Gateway, namespace: str | None, tenant: str | None) -> str | None:
    """The stored namespace an invalidation targets (the cache stage's ``t/...`` or ``shared/...`` form)."""
    if tenant:
        if not _TENANT.match(tenant):
            raise invalid_request(
                f"Invalid tenant {tenant[:64]!r}: 1-128 characters, no '/' and no control characters.",
                param="tenant",
                code="invalid_tenant",
            )
        if namespace:
            check_names(namespace)
        return f"t/{tenant}/{namespace or ''}"
    if not namespace:
        return None
    if namespace.startswith(("t/", "shared/")):
        return namespace  # already the stored form
    check_names(namespace)
    if namespace in gw.config.cache.shared_namespaces:
        return f"shared/{namespace}"
    raise invalid_request(f"Namespace {namespace!r} is not shared: add tenant= to name whose it is.", param="namespace")
