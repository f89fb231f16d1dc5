"""The semantic tier as the cache stage calls it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.cache.semantic.fake_embedder import FakeEmbedder

from tokenomy.cache.semantic.context import conversation_context
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.config.cache import SemanticCacheConfig


def cache(tmp_path: Path, verify: str = "entities") -> tuple[SemanticCache, FakeEmbedder]:
    embed = FakeEmbedder()
    config = SemanticCacheConfig(enabled=True, verify=verify, index_path=str(tmp_path / "s.usearch"))  # type: ignore[arg-type]
    return SemanticCache(config, embed), embed


def chat(*turns: str, system: str | None = None, **params: Any) -> dict[str, Any]:
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for i, turn in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": turn})
    return {"messages": messages, "temperature": 0, **params}


def ctx(body: dict[str, Any], namespace: str = "t/a/", model: str = "fast") -> tuple[str, str]:
    found = conversation_context(namespace, model, body)
    assert found is not None
    return found


KEY1, KEY2 = "1" * 40, "2" * 40


async def test_paraphrase_hits_with_its_similarity(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    await semantic.add(*ctx(chat("What is the capital of France?")), KEY1)
    hit = await semantic.lookup(*ctx(chat("what is the capital of France")), 0.9)
    assert hit is not None and hit.key == KEY1 and hit.similarity > 0.99 and hit.vector.shape == (384,)
    semantic.close()


async def test_follow_up_never_hits_another_conversation(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    b = chat("What is the capital of Germany?", "Berlin.", "And its population?")
    await semantic.add(*ctx(b), KEY2)
    a = chat("What is the capital of France?", "Paris.", "And its population?")
    assert await semantic.lookup(*ctx(a), 0.5) is None  # identical text, other conversation
    hit = await semantic.lookup(*ctx(chat("What is the capital of Germany?", "Berlin.", "and its population")), 0.9)
    assert hit is not None and hit.key == KEY2  # the same conversation does hit
    semantic.close()


async def test_other_system_prompt_model_tenant_or_params_never_hit(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    question = "What is the capital of France?"
    await semantic.add(*ctx(chat(question, system="Answer in French.")), KEY1)
    assert await semantic.lookup(*ctx(chat(question, system="Answer in English.")), 0.5) is None
    assert await semantic.lookup(*ctx(chat(question)), 0.5) is None
    assert await semantic.lookup(*ctx(chat(question, system="Answer in French."), model="other"), 0.5) is None
    assert await semantic.lookup(*ctx(chat(question, system="Answer in French."), namespace="t/b/"), 0.5) is None
    assert await semantic.lookup(*ctx(chat(question, system="Answer in French.", temperature=1)), 0.5) is None
    assert await semantic.lookup(*ctx(chat(question, system="Answer in French.")), 0.5) is not None
    semantic.close()


async def test_threshold_is_respected(tmp_path: Path) -> None:
    semantic, embed = cache(tmp_path, verify="none")
    stored, asked = "capital of France please", "capital of France"
    await semantic.add(*ctx(chat(stored)), KEY1)
    similarity = float(embed.vectors([stored])[0] @ embed.vectors([asked])[0])
    assert 0.5 < similarity < 0.99
    assert await semantic.lookup(*ctx(chat(asked)), similarity + 0.01) is None
    hit = await semantic.lookup(*ctx(chat(asked)), similarity - 0.01)
    assert hit is not None and abs(hit.similarity - similarity) < 0.01
    semantic.close()


async def test_entity_check_rejects_other_places_and_numbers(tmp_path: Path) -> None:
    strict, _ = cache(tmp_path / "strict")
    loose, _ = cache(tmp_path / "loose", verify="none")
    for semantic in (strict, loose):
        await semantic.add(*ctx(chat("weather in Paris today")), KEY1)
        await semantic.add(*ctx(chat("price of 2 apples")), KEY2)
    for asked in ("weather in London today", "price of 3 apples"):
        assert await strict.lookup(*ctx(chat(asked)), 0.3) is None
        assert await loose.lookup(*ctx(chat(asked)), 0.3) is not None  # the embedding alone would accept it
    strict.close()
    loose.close()


async def test_lookup_without_entries_does_not_embed_and_add_reuses_vectors(tmp_path: Path) -> None:
    semantic, embed = cache(tmp_path)
    assert await semantic.lookup(*ctx(chat("first question")), 0.9) is None
    assert embed.calls == 0  # no entry in this context: no embedding
    await semantic.add(*ctx(chat("first question")), KEY1)
    assert embed.calls == 1
    assert await semantic.lookup(*ctx(chat("second question")), 0.99) is None
    assert embed.calls == 2
    await semantic.add(*ctx(chat("second question")), KEY2)  # reuses the lookup's vector
    assert embed.calls == 2
    await semantic.add(*ctx(chat("second question")), KEY2)  # already there: not added twice
    assert len(semantic.index) == 2
    semantic.close()


async def test_remove_and_persistence(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    await semantic.add(*ctx(chat("capital of France")), KEY1)
    await semantic.add(*ctx(chat("capital of Spain")), KEY2)
    semantic.remove(KEY2)
    semantic.close()  # saves
    reopened, _ = cache(tmp_path)
    assert len(reopened.index) == 1
    hit = await reopened.lookup(*ctx(chat("capital of France?")), 0.9)
    assert hit is not None and hit.key == KEY1
    assert await reopened.lookup(*ctx(chat("capital of Spain")), 0.9) is None
    reopened.close()


async def test_embedding_failures_are_misses(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    await semantic.add(*ctx(chat("capital of France")), KEY1)

    async def broken(texts: list[str]) -> Any:
        raise RuntimeError("embedding model overloaded")

    semantic._embed = broken
    assert await semantic.lookup(*ctx(chat("capital of France?")), 0.9) is None
    await semantic.add(*ctx(chat("capital of Spain")), KEY2)  # logged, not raised
    assert len(semantic.index) == 1
    semantic.close()


async def test_added_entry_is_found_before_it_is_indexed(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    indexing = asyncio.ensure_future(semantic.add(*ctx(chat("What is the capital of France?")), KEY1))
    assert len(semantic.index) == 0 and semantic._pending  # findable from here on
    hit = await semantic.lookup(*ctx(chat("what is the capital of France")), 0.9)
    assert hit is not None and hit.key == KEY1
    await indexing
    assert len(semantic.index) == 1 and not semantic._pending
    hit = await semantic.lookup(*ctx(chat("what is the capital of France")), 0.9)
    assert hit is not None and hit.key == KEY1
    semantic.close()
