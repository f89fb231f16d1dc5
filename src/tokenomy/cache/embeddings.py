"""The embeddings cache: ``/v1/embeddings`` is cached per input item.

A batch with some known inputs sends only the unknown ones upstream and reassembles the answer
in the original order. Vectors are stored as little-endian float32 bytes and returned in the
request's ``encoding_format``. Per-item token counts (for the ledger's saving) split the
upstream's usage over the items it embedded, by length (token arrays: exactly).
"""

from __future__ import annotations

import base64
import sys
import time
from array import array
from typing import Any

from tokenomy.cache.control import Directives
from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.key import item_key
from tokenomy.cache.service import CacheService
from tokenomy.config.models import LogicalModel
from tokenomy.errors import GatewayError
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Response, Usage

_NOT_OPTIONS = frozenset({"input", "model", "user", "encoding_format", "metadata"})


def _items(value: Any) -> tuple[list[Any], bool]:
    """The request's inputs as a list, and whether it was a single input."""
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value], True  # one token array
    if isinstance(value, list):
        return list(value), False
    return [value], True


_BIG_ENDIAN = sys.byteorder == "big"


def _vector_bytes(embedding: Any) -> bytes:
    """An upstream embedding as little-endian float32 bytes (502 when it is not one)."""
    try:
        if isinstance(embedding, str):
            return base64.b64decode(embedding)
        # the standard library's array, not numpy, which would add ~16 MB to the gateway process
        vector = array("f", embedding)
    except (TypeError, ValueError):
        message = "The upstream answered an embedding that is neither a list of numbers nor base64."
        raise GatewayError(502, message, "upstream_error", code="upstream_bad_response") from None
    if _BIG_ENDIAN:  # pragma: no cover - x86 and ARM Linux are little-endian
        vector.byteswap()
    return vector.tobytes()


def _as_wire(vector: bytes, encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(vector).decode()
    floats = array("f", vector)
    if _BIG_ENDIAN:  # pragma: no cover
        floats.byteswap()
    return floats.tolist()


def _weight(item: Any) -> int:
    return len(item) if isinstance(item, list) else max(1, len(str(item)))


class EmbeddingsCache:
    """Per-item caching for the embeddings endpoint."""

    def __init__(self, service: CacheService, ttl: float, max_bytes: int) -> None:
        self._service = service
        self._ttl = ttl
        self._max_bytes = max_bytes

    async def handle(
        self,
        ctx: CallContext,
        call_next: Handler,
        namespace: str,
        logical: LogicalModel,
        directives: Directives,
        ttl: float,
    ) -> Response:
        """Answer from cached items where possible; embed the rest upstream."""
        body = ctx.body
        model = logical.name
        items, single = _items(body.get("input"))
        options = {k: v for k, v in body.items() if k not in _NOT_OPTIONS}
        keys = [item_key(namespace, model, options, item) for item in items]
        found: list[CacheEntry | None] = [None] * len(items)
        if directives.lookup:
            for i, key in enumerate(keys):
                found[i], _tier = await self._service.get(key, directives.max_age)
        missing = [i for i, entry in enumerate(found) if entry is None]
        cached_tokens = sum(entry.prompt_tokens for entry in found if entry is not None)
        encoding = str(body.get("encoding_format") or "float")
        upstream_usage = Usage()
        response_model = model
        if missing:
            sub = [items[i] for i in missing]
            ctx.body = {**body, "input": sub[0] if single else sub}
            try:
                response = await call_next(ctx)
            finally:
                ctx.body = body
            assert isinstance(response, Completion)
            upstream_usage = response.usage or Usage.from_openai(response.body.get("usage")) or Usage()
            response_model = response.body.get("model", model)
            data = sorted(response.body.get("data") or (), key=lambda d: d.get("index", 0))
            weights = [_weight(items[i]) for i in missing]
            total_weight = sum(weights) or 1
            now = time.time()
            for n, (i, item) in enumerate(zip(missing, data, strict=False)):
                vector = _vector_bytes(item.get("embedding"))
                tokens = round(upstream_usage.prompt_tokens * weights[n] / total_weight)
                entry = CacheEntry(vector, now, now + ttl, model, ctx.task, namespace, tokens)
                found[i] = entry
                if directives.store and len(vector) <= self._max_bytes:
                    self._service.put(keys[i], entry)
            ctx.cache = "miss"
            ctx.cached_item_tokens = cached_tokens  # the saving of the items that were cached
        else:
            ctx.cache = "hit-exact"
            ctx.logical_model = logical
            ctx.served_model = model
            ctx.baseline_deployment = logical.deployments[0]
            ctx.route = "cache"
        ctx.decisions["cache_items"] = f"{len(items) - len(missing)}/{len(items)}"
        ctx.usage = Usage(prompt_tokens=upstream_usage.prompt_tokens if missing else cached_tokens)
        total = upstream_usage.prompt_tokens + cached_tokens
        out = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _as_wire(entry.body, encoding)}
                for i, entry in enumerate(found)
                if entry is not None
            ],
            "model": response_model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
        return Completion(out, ctx.usage)
