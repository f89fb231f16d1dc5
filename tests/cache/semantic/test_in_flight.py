"""Paraphrases of a question still on its way upstream wait for its answer (``coalesce``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.cache.semantic.fake_embedder import FakeEmbedder
from tests.cache.semantic.test_matcher import KEY1, KEY2, chat, ctx

from tokenomy.cache.semantic import matcher
from tokenomy.cache.semantic.live import TaskStats
from tokenomy.cache.semantic.matcher import SemanticCache
from tokenomy.config.cache import SemanticCacheConfig

QUESTION, PARAPHRASE = "What is the capital of France?", "what is the capital of France"


def cache(tmp_path: Path, **options: object) -> tuple[SemanticCache, FakeEmbedder]:
    embed = FakeEmbedder()
    config = SemanticCacheConfig(enabled=True, verify="entities", index_path=str(tmp_path / "s.usearch"), **options)  # type: ignore[arg-type]
    return SemanticCache(config, embed), embed


async def test_a_paraphrase_waits_for_the_answer_in_flight(tmp_path: Path) -> None:
    semantic, embed = cache(tmp_path)
    assert await semantic.lookup(*ctx(chat(QUESTION)), 0.9) is None  # nothing stored: no embedding
    flight = semantic.fly(*ctx(chat(QUESTION)), KEY1)
    assert flight is not None and flight.embedding is not None
    await flight.embedding  # embedded in the background
    assert flight.vector is not None and embed.calls == 1
    waiting = asyncio.ensure_future(semantic.lookup(*ctx(chat(PARAPHRASE)), 0.9))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # it waits for the answer, it does not miss
    await semantic.add(*ctx(chat(QUESTION)), KEY1, flight.vector)  # stored, then landed
    semantic.landed(flight)
    hit = await waiting
    assert (
        hit is not None and hit.key == KEY1 and hit.waited_ms is not None and hit.waited_ms >= 40 and embed.calls == 2
    )  # the add reused the vector
    assert not semantic._flying
    semantic.close()


async def test_other_contexts_and_other_questions_do_not_wait(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    flight = semantic.fly(*ctx(chat(QUESTION, system="Answer in French.")), KEY1)
    assert flight is not None and flight.embedding is not None
    await flight.embedding
    assert await asyncio.wait_for(semantic.lookup(*ctx(chat(PARAPHRASE)), 0.9), 1) is None  # another context
    other = ctx(chat("What is the capital of Spain?", system="Answer in French."))
    assert await asyncio.wait_for(semantic.lookup(*other, 0.9), 1) is None  # the word check rejects it
    semantic.landed(flight)
    semantic.close()


async def test_a_wait_ends_as_a_miss_when_the_answer_is_late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher, "IN_FLIGHT_WAIT_S", 0.1)
    semantic, _ = cache(tmp_path)
    flight = semantic.fly(*ctx(chat(QUESTION)), KEY1)
    assert flight is not None and flight.embedding is not None
    await flight.embedding
    assert await semantic.lookup(*ctx(chat(PARAPHRASE)), 0.9) is None
    semantic.landed(flight)
    semantic.landed(flight)  # twice is harmless
    assert not semantic._flying and semantic._flying_count == 0
    semantic.close()


async def test_nothing_waits_when_coalescing_is_off_or_the_task_is_suspended(tmp_path: Path) -> None:
    off, _ = cache(tmp_path, coalesce=False)
    assert off.fly(*ctx(chat(QUESTION)), KEY1) is None
    off.close()
    semantic, _ = cache(tmp_path / "b")
    flight = semantic.fly(*ctx(chat(QUESTION)), KEY2)
    assert flight is not None and flight.embedding is not None
    await flight.embedding
    semantic.live.tasks["faq"] = TaskStats(suspended=True)  # the error budget has suspended this task's hits
    assert await asyncio.wait_for(semantic.lookup(*ctx(chat(PARAPHRASE)), 0.9, task="faq"), 1) is None
    semantic.landed(flight)
    semantic.close()


async def test_many_paraphrases_wait_for_one_answer(tmp_path: Path) -> None:
    semantic, _ = cache(tmp_path)
    flight = semantic.fly(*ctx(chat(QUESTION)), KEY1)
    assert flight is not None and flight.embedding is not None
    await flight.embedding
    variants = [PARAPHRASE, PARAPHRASE.upper(), PARAPHRASE + "?", "What is the capital of France", QUESTION.lower()]
    waiting = [asyncio.ensure_future(semantic.lookup(*ctx(chat(v)), 0.9)) for v in variants * 4]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiting)
    semantic.landed(flight)  # failed or stored: every waiter wakes (the cache stage then reads the answer)
    hits = await asyncio.gather(*waiting)
    assert all(h is not None and h.key == KEY1 and h.waited_ms is not None for h in hits)
    semantic.close()
