"""Cache the results of your own pipeline steps in a Tokenomy gateway (``/v1/cache``).

As a decorator (sync or async functions; the key is a hash of the function's qualified name and
its arguments)::

    from tokenomy.client import cached

    @cached("summaries", ttl=3600)
    def summarize(doc_id: str) -> dict: ...

    @cached("retrieval")
    async def retrieve(query: str, k: int = 5) -> list[str]: ...

As a context manager, with an explicit key::

    with cached("parsed", key=f"doc-{doc_id}") as slot:
        if not slot.hit:
            slot.set(parse(doc_id))  # stored when the block ends without an error
        parsed = slot.value

(``async with`` works the same.) The gateway is ``base_url=`` or ``$TOKENOMY_BASE_URL`` (default
``http://127.0.0.1:8080``) and the key ``api_key=`` or ``$TOKENOMY_API_KEY``. Values are JSON by
default; pass ``serializer=RAW`` for bytes, or any object with ``content_type``, ``dumps`` and
``loads``. The cache never breaks the application: if the gateway is unreachable or answers an
error, the function runs as if uncached and a :class:`CacheWarning` is issued (once per kind of
problem); an unreachable gateway is not retried for ``retry_after_s`` seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import functools
import hashlib
import inspect
import json
import os
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from pathlib import PurePath
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload
from urllib.parse import quote

import httpx

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


class CacheWarning(RuntimeWarning):
    """The cache could not be used; the function ran uncached."""


class Serializer(Protocol):
    """How values become bytes in the cache and back."""

    content_type: str

    def dumps(self, value: Any) -> bytes:
        """The stored form."""
        ...

    def loads(self, data: bytes) -> Any:
        """The value back."""
        ...


class JsonSerializer:
    """JSON (the default): dicts, lists, strings, numbers, booleans and ``None``."""

    content_type = "application/json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class RawSerializer:
    """Bytes as they are."""

    content_type = "application/octet-stream"

    def dumps(self, value: Any) -> bytes:
        return bytes(value)

    def loads(self, data: bytes) -> Any:
        return data


JSON: Serializer = JsonSerializer()
RAW: Serializer = RawSerializer()

_MISS = object()
_warned: set[str] = set()
_warn_lock = threading.Lock()


def _warn(kind: str, message: str) -> None:
    with _warn_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(f"tokenomy cache: {message}; running uncached", CacheWarning, stacklevel=4)


def key_for(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], version: str = "") -> str:
    """The default key: SHA-256 of the function's module and qualified name, ``version`` and arguments.

    Arguments are encoded as canonical JSON (dataclasses, pydantic models, sets, bytes, paths,
    enums and datetimes included); anything else raises :class:`TypeError` (give ``key_fn=``).
    """
    payload = [fn.__module__, fn.__qualname__, version, list(args), kwargs]
    try:
        text = json.dumps(payload, sort_keys=True, default=_canonical, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot derive a cache key for {fn.__qualname__}: {exc}; pass key_fn= or key=") from exc
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__qualname__, **dataclasses.asdict(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic v2
        return {"__model__": type(value).__qualname__, **value.model_dump(mode="json")}
    if isinstance(value, set | frozenset):
        return sorted(json.dumps(v, sort_keys=True, default=_canonical) for v in value)
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath | datetime.date | datetime.time):
        return str(value)
    raise TypeError(f"{type(value).__qualname__} values cannot be part of a cache key")


class Slot:
    """One cache entry in a ``with cached(...)`` block: ``hit``, ``value`` and ``set()``."""

    def __init__(self, hit: bool, value: Any) -> None:
        self.hit = hit
        self._value = value
        self._pending = False

    @property
    def value(self) -> Any:
        """The cached value, or what ``set()`` gave; :class:`LookupError` before either."""
        if self._value is _MISS:
            raise LookupError("no cached value: call slot.set(value) first")
        return self._value

    def set(self, value: Any) -> None:
        """Keep ``value``; it is stored when the block ends without an error."""
        self._value = value
        self._pending = True


class Cached:
    """A cache binding (namespace, key rule, TTL, gateway): a decorator and a context manager."""

    def __init__(
        self,
        namespace: str = "default",
        *,
        key: str | None = None,
        key_fn: Callable[..., str] | None = None,
        version: str | int = "",
        ttl: float | None = None,
        serializer: Serializer = JSON,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 5.0,
        retry_after_s: float = 30.0,
    ) -> None:
        self.namespace = namespace
        self.key = key
        self.key_fn = key_fn
        self.version = str(version)
        self.ttl = ttl
        self.serializer = serializer
        self._base_url = base_url
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 1.0))
        self._retry_after_s = retry_after_s
        self._down_until = 0.0
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._slot: Slot | None = None
        self._slot_key = ""

    # -- decorator ------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Wrap ``fn`` (sync or async): return the cached result, or run it and store the result."""
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                key = self._key(fn, args, kwargs)
                found = await self._aget(key)
                if found is not _MISS:
                    return found
                result = await afn(*args, **kwargs)
                await self._aput(key, result)
                return result

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            key = self._key(fn, args, kwargs)
            found = self._get(key)
            if found is not _MISS:
                return cast(R, found)
            result = fn(*args, **kwargs)
            self._put(key, result)
            return result

        return run

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> Slot:
        slot = self._open_slot()
        found = self._get(self._slot_key)
        slot.hit, slot._value = found is not _MISS, found
        return slot

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        slot, self._slot = self._slot, None
        if kind is None and slot is not None and slot._pending:
            self._put(self._slot_key, slot._value)

    async def __aenter__(self) -> Slot:
        slot = self._open_slot()
        found = await self._aget(self._slot_key)
        slot.hit, slot._value = found is not _MISS, found
        return slot

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        slot, self._slot = self._slot, None
        if kind is None and slot is not None and slot._pending:
            await self._aput(self._slot_key, slot._value)

    def _open_slot(self) -> Slot:
        if self.key is None:
            raise TypeError("as a context manager, cached() needs key=...")
        if self._slot is not None:
            raise RuntimeError("this cached(...) is already open: use a new cached(...) for each with-block")
        self._slot = Slot(False, _MISS)
        self._slot_key = self.key
        return self._slot

    # -- HTTP -----------------------------------------------------------------------------

    def _key(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.key is not None:
            return self.key
        if self.key_fn is not None:
            return self.key_fn(*args, **kwargs)
        return key_for(fn, args, kwargs, self.version)

    def _url(self, key: str) -> str:
        return f"/v1/cache/{quote(self.namespace, safe='')}/{quote(key, safe='')}"

    def _settings(self) -> dict[str, Any]:
        base = (self._base_url or os.environ.get("TOKENOMY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        base = base.removesuffix("/v1")
        api_key = self._api_key or os.environ.get("TOKENOMY_API_KEY")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return {"base_url": base, "headers": headers, "timeout": self._timeout}

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(**self._settings())
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = httpx.AsyncClient(**self._settings())
        return client

    def _get(self, key: str) -> Any:
        if time.monotonic() < self._down_until:
            return _MISS
        try:
            return self._read(self._sync_client().get(self._url(key)))
        except httpx.TransportError as exc:
            return self._unreachable(exc)

    async def _aget(self, key: str) -> Any:
        if time.monotonic() < self._down_until:
            return _MISS
        try:
            return self._read(await self._async_client().get(self._url(key)))
        except httpx.TransportError as exc:
            return self._unreachable(exc)

    def _put(self, key: str, value: Any) -> None:
        request = self._request(value)
        if request is None or time.monotonic() < self._down_until:
            return
        try:
            self._written(self._sync_client().put(self._url(key), **request))
        except httpx.TransportError as exc:
            self._unreachable(exc)

    async def _aput(self, key: str, value: Any) -> None:
        request = self._request(value)
        if request is None or time.monotonic() < self._down_until:
            return
        try:
            self._written(await self._async_client().put(self._url(key), **request))
        except httpx.TransportError as exc:
            self._unreachable(exc)

    def _request(self, value: Any) -> dict[str, Any] | None:
        try:
            content = self.serializer.dumps(value)
        except (TypeError, ValueError) as exc:
            _warn("serialize", f"cannot serialize a {type(value).__qualname__} ({exc}); not stored")
            return None
        params = {"ttl": str(self.ttl)} if self.ttl is not None else {}
        return {"content": content, "params": params, "headers": {"content-type": self.serializer.content_type}}

    def _read(self, resp: httpx.Response) -> Any:
        if resp.status_code == 404 and resp.headers.get("x-tokenomy-cache") == "miss":
            return _MISS
        if resp.status_code != 200:
            _warn(f"status-{resp.status_code}", f"the gateway answered {resp.status_code}: {_message(resp)}")
            return _MISS
        try:
            return self.serializer.loads(resp.content)
        except (TypeError, ValueError) as exc:
            _warn("deserialize", f"a cached value did not deserialize ({exc})")
            return _MISS

    def _written(self, resp: httpx.Response) -> None:
        if resp.status_code != 200:
            _warn(f"status-{resp.status_code}", f"the gateway answered {resp.status_code}: {_message(resp)}")

    def _unreachable(self, exc: Exception) -> Any:
        self._down_until = time.monotonic() + self._retry_after_s
        _warn("unreachable", f"the gateway is unreachable ({type(exc).__name__}: {exc})")
        return _MISS

    def close(self) -> None:
        """Close the synchronous connection pool (async pools close with their event loop)."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:200]


@overload
def cached(namespace: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def cached(
    namespace: str = "default",
    /,
    *,
    key: str | None = None,
    key_fn: Callable[..., str] | None = None,
    version: str | int = "",
    ttl: float | None = None,
    serializer: Serializer = JSON,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 5.0,
    retry_after_s: float = 30.0,
) -> Cached: ...


def cached(namespace: Any = "default", /, **options: Any) -> Any:
    """Cache a step's result in the gateway: ``@cached``, ``@cached("ns", ttl=...)`` or ``with cached(...)``.

    ``namespace``: the cache namespace (per tenant unless the gateway declares it shared).
    ``key``: a fixed key (required as a context manager); ``key_fn(*args, **kwargs)``: a key rule;
    otherwise a hash of the function's qualified name, ``version`` and arguments.
    ``ttl``: seconds (default: the gateway's ``cache.exact.ttl_s``).
    """
    if callable(namespace):
        return Cached()(namespace)
    return Cached(namespace, **options)
