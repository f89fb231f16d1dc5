"""Intermediate results by name: the service behind ``/v1/cache/{namespace}/{key}``.

Application pipelines keep the output of their own steps (a parsed document, a retrieval result)
in the gateway's level-2 store, next to cached model answers. Keys are per tenant: a namespace is
shared by all tenants only when the config lists it in ``cache.shared_namespaces``. Values go
straight to the shared store (no level-1 copy, so a delete through one gateway is seen by all),
in a checksummed envelope: a corrupted value reads as a miss and is deleted.

Store keys are ``kv/t/{tenant}/{namespace}/{key}`` or ``kv/shared/{namespace}/{key}``; names
cannot contain ``/``, so no two (tenant, namespace, key) triples share one. The entry metadata
uses the same namespace form as the cache stage (``t/{tenant}/{namespace}``), so an admin
invalidation of a namespace removes its intermediate results as well as its model answers.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from tokenomy.cache.stores.base import CacheStore, CacheUnavailable, EntryMeta
from tokenomy.errors import GatewayError, invalid_request

NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
KEY = re.compile(r"^[A-Za-z0-9._:-]{1,256}$")
MAX_TTL_S = 365 * 86_400.0
DEFAULT_CONTENT_TYPE = "application/octet-stream"
KV_TASK = "kv"  # the task recorded for intermediate results (invalidate with task=kv)

T = TypeVar("T")

_MAGIC = b"TKV1"
_DIGEST = 16


class _Envelope(msgspec.Struct, array_like=True):
    value: bytes
    content_type: str
    created: float
    expires: float


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Envelope)


@dataclass(frozen=True, slots=True)
class KvValue:
    """A stored value and what came with it."""

    value: bytes
    content_type: str
    created: float
    expires: float


def pack(item: KvValue) -> bytes:
    """The stored form: ``TKV1`` + 16-byte BLAKE2b of the payload + msgpack payload."""
    payload = _encoder.encode(_Envelope(item.value, item.content_type, item.created, item.expires))
    return _MAGIC + hashlib.blake2b(payload, digest_size=_DIGEST).digest() + payload


def unpack(data: bytes) -> KvValue | None:
    """The value, or ``None`` if it does not verify."""
    head = len(_MAGIC) + _DIGEST
    if len(data) < head or not data.startswith(_MAGIC):
        return None
    payload = data[head:]
    if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != data[len(_MAGIC) : head]:
        return None
    try:
        env = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return KvValue(env.value, env.content_type, env.created, env.expires)


def unavailable(message: str) -> GatewayError:
    """503 for a cache API that has no store, or whose store is down."""
    return GatewayError(503, message, "server_error", code="cache_unavailable", headers={"retry-after": "1"})


class KvService:
    """Put, get and delete named values for a tenant."""

    def __init__(
        self,
        store: CacheStore | None,
        *,
        shared_namespaces: tuple[str, ...] = (),
        default_ttl_s: float = 86_400.0,
        max_value_bytes: int = 1024 * 1024,
    ) -> None:
        self.store = store
        self.shared = frozenset(shared_namespaces)
        self.default_ttl_s = min(default_ttl_s, MAX_TTL_S)
        self.max_value_bytes = max_value_bytes

    def scope(self, tenant: str, namespace: str) -> str:
        """The namespace as stored (the cache stage's form): shared, or the tenant's own."""
        check_names(namespace)
        return f"shared/{namespace}" if namespace in self.shared else f"t/{tenant}/{namespace}"

    async def put(
        self,
        tenant: str,
        namespace: str,
        key: str,
        value: bytes,
        ttl_s: float | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> KvValue:
        """Store ``value`` for ``ttl_s`` seconds (the configured TTL when ``None``)."""
        check_names(namespace, key)
        ttl = self.default_ttl_s if ttl_s is None else check_ttl(ttl_s)
        if len(value) > self.max_value_bytes:
            raise too_large(self.max_value_bytes)
        scope = self.scope(tenant, namespace)
        now = time.time()
        item = KvValue(value, content_type, now, now + ttl)
        meta = EntryMeta(scope, "", KV_TASK, item.expires)
        await self._call(self._store().set(_store_key(scope, key), pack(item), meta))
        return item

    async def get(self, tenant: str, namespace: str, key: str) -> KvValue | None:
        """The live value, or ``None`` (absent, expired or corrupt; a corrupt one is deleted)."""
        check_names(namespace, key)
        store_key = _store_key(self.scope(tenant, namespace), key)
        data = await self._call(self._store().get(store_key))
        if data is None:
            return None
        item = unpack(data)
        if item is None:
            await self._call(self._store().delete(store_key))
            return None
        return item if item.expires > time.time() else None

    async def delete(self, tenant: str, namespace: str, key: str) -> None:
        """Remove the value (no error if absent)."""
        check_names(namespace, key)
        await self._call(self._store().delete(_store_key(self.scope(tenant, namespace), key)))

    def _store(self) -> CacheStore:
        if self.store is None:
            raise unavailable(
                "The cache API needs a level-2 store; set cache.exact.store to sqlite or redis in the config."
            )
        return self.store

    @staticmethod
    async def _call(op: Awaitable[T]) -> T:
        try:
            return await op
        except CacheUnavailable as exc:
            raise unavailable(f"The cache store is unavailable ({exc}); retry shortly.") from exc


def check_names(namespace: str, key: str | None = None) -> None:
    """400 unless the namespace (and key) use ``A-Z a-z 0-9 . _ : -`` and fit the length limits."""
    if not NAME.match(namespace):
        raise invalid_request(
            f"Invalid cache namespace {namespace[:64]!r}: use 1-128 characters from A-Z a-z 0-9 . _ : -",
            param="namespace",
            code="invalid_cache_name",
        )
    if key is not None and not KEY.match(key):
        raise invalid_request(
            f"Invalid cache key {key[:64]!r}: use 1-256 characters from A-Z a-z 0-9 . _ : -",
            param="key",
            code="invalid_cache_name",
        )


def check_ttl(ttl_s: float) -> float:
    """400 unless ``0 < ttl_s <= MAX_TTL_S``."""
    if not 0 < ttl_s <= MAX_TTL_S:  # also rejects NaN
        raise invalid_request(
            f"Invalid ttl {ttl_s}: give seconds, more than 0 and at most {MAX_TTL_S:.0f} (365 days).",
            param="ttl",
            code="invalid_ttl",
        )
    return ttl_s


def too_large(limit: int) -> GatewayError:
    """413 for a value over the limit."""
    return GatewayError(
        413,
        f"Cache values are limited to {limit} bytes (cache.exact.max_entry_bytes).",
        "invalid_request_error",
        param="value",
        code="cache_value_too_large",
    )


def _store_key(scope: str, key: str) -> str:
    return f"kv/{scope}/{key}"
