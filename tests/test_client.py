"""``tokenomy.client.cached`` against a real gateway (sync functions run in a thread: the gateway
shares the test's event loop)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cache.test_kv_api import config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.ports import free_port

from tokenomy import client
from tokenomy.client import RAW, CacheWarning, cached, key_for


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("client")
    async with running_gateway(config((openai_fake, anthropic_fake), home)) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    client._warned.clear()
    yield
    client._warned.clear()


def ns() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_sync_decorator_serves_the_second_call_from_the_cache(gw: RunningGateway) -> None:
    calls: list[tuple[Any, ...]] = []

    @cached(ns(), base_url=gw.url, api_key="sk-alice", ttl=60)
    def step(doc: str, *, n: int = 1) -> dict[str, Any]:
        calls.append((doc, n))
        return {"doc": doc, "n": n, "items": [1, 2]}

    first = await asyncio.to_thread(step, "a", n=2)
    second = await asyncio.to_thread(step, "a", n=2)
    other = await asyncio.to_thread(step, "b")
    assert first == second == {"doc": "a", "n": 2, "items": [1, 2]} and other["doc"] == "b"
    assert calls == [("a", 2), ("b", 1)]
    assert step.__name__ == "step"


async def test_async_decorator_and_env_settings(gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENOMY_BASE_URL", gw.v1)  # with /v1 is accepted too
    monkeypatch.setenv("TOKENOMY_API_KEY", "sk-bob")
    calls = 0

    @cached(ns())
    async def retrieve(query: str) -> list[str]:
        nonlocal calls
        calls += 1
        return [query, query.upper()]

    assert await retrieve("q") == await retrieve("q") == ["q", "Q"]
    assert calls == 1


async def test_bare_decorator_uses_the_default_namespace(gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENOMY_BASE_URL", gw.url)
    monkeypatch.setenv("TOKENOMY_API_KEY", "sk-alice")
    token = uuid.uuid4().hex
    calls = 0

    @cached
    async def step(x: str) -> str:
        nonlocal calls
        calls += 1
        return x * 2

    assert await step(token) == await step(token) == token * 2 and calls == 1


async def test_context_manager_sync_and_async(gw: RunningGateway) -> None:
    name, key = ns(), uuid.uuid4().hex

    def sync_block() -> tuple[bool, Any]:
        with cached(name, key=key, base_url=gw.url, api_key="sk-alice") as slot:
            hit = slot.hit
            if not hit:
                slot.set({"parsed": True})
            return hit, slot.value

    assert await asyncio.to_thread(sync_block) == (False, {"parsed": True})
    assert await asyncio.to_thread(sync_block) == (True, {"parsed": True})
    async with cached(name, key=key, base_url=gw.url, api_key="sk-alice") as slot:
        assert slot.hit and slot.value == {"parsed": True}
    async with cached(name, key=key, base_url=gw.url, api_key="sk-bob") as other:
        assert not other.hit  # another tenant
        with pytest.raises(LookupError):
            _ = other.value


async def test_nothing_is_stored_when_the_block_fails(gw: RunningGateway) -> None:
    name = ns()
    with pytest.raises(RuntimeError):
        async with cached(name, key="k", base_url=gw.url, api_key="sk-alice") as slot:
            slot.set("half-done")
            raise RuntimeError("step failed")
    async with cached(name, key="k", base_url=gw.url, api_key="sk-alice") as slot:
        assert not slot.hit


async def test_raw_bytes_and_custom_keys(gw: RunningGateway) -> None:
    calls = 0

    @cached(ns(), serializer=RAW, key_fn=lambda doc_id, **_: f"doc-{doc_id}", base_url=gw.url, api_key="sk-alice")
    async def blob(doc_id: int, noise: str = "") -> bytes:
        nonlocal calls
        calls += 1
        return bytes([doc_id, 0, 255])

    assert await blob(7, noise="a") == await blob(7, noise="b") == b"\x07\x00\xff" and calls == 1


async def test_gateway_down_runs_the_function_and_warns_once() -> None:
    calls = 0

    @cached(ns(), base_url=f"http://127.0.0.1:{free_port()}")
    async def step(x: int) -> int:
        nonlocal calls
        calls += 1
        return x + 1

    with pytest.warns(CacheWarning, match="unreachable") as record:
        assert [await step(1), await step(1), await step(2)] == [2, 2, 3]
    cache_warnings = [w for w in record if issubclass(w.category, CacheWarning)]  # ignore unrelated warnings
    assert calls == 3 and len(cache_warnings) == 1, [str(w.message) for w in record]

    @cached(ns(), base_url=f"http://127.0.0.1:{free_port()}")
    def sync_step(x: int) -> int:
        return -x

    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert await asyncio.to_thread(sync_step, 4) == -4
    # Already warned in this process. Only cache warnings count: the garbage collector may emit an
    # unrelated ResourceWarning from another test's objects inside this window.
    assert [str(w.message) for w in again if issubclass(w.category, CacheWarning)] == []


async def test_gateway_errors_do_not_break_the_application(gw: RunningGateway) -> None:
    @cached(ns(), base_url=gw.url, api_key="sk-wrong")
    async def step() -> str:
        return "ran"

    with pytest.warns(CacheWarning, match="401"):
        assert await step() == "ran"

    @cached(ns(), base_url=gw.url, api_key="sk-alice")
    async def unserializable() -> object:
        return object()

    with pytest.warns(CacheWarning, match="serialize"):
        assert isinstance(await unserializable(), object)


@dataclasses.dataclass
class Query:
    text: str
    tags: frozenset[str]


def test_default_keys_are_stable_and_argument_sensitive(tmp_path: Path) -> None:
    def f() -> None: ...

    base = key_for(f, (Query("q", frozenset({"b", "a"})), tmp_path), {"k": 1, "j": b"\x00"})
    assert base == key_for(f, (Query("q", frozenset({"a", "b"})), tmp_path), {"j": b"\x00", "k": 1})
    assert base != key_for(f, (Query("q", frozenset({"a"})), tmp_path), {"k": 1, "j": b"\x00"})
    assert base != key_for(f, (Query("q", frozenset({"a", "b"})), tmp_path), {"k": 1, "j": b"\x00"}, version="2")
    with pytest.raises(TypeError, match="key_fn"):
        key_for(f, (object(),), {})
