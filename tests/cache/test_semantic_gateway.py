"""The semantic tier through a real gateway: paraphrases hit (also while the first is in flight), other
conversations and entities do not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.telemetry.metrics import REGISTRY


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    home = tmp_path_factory.mktemp("semantic")
    config = (
        proxy_config(openai_fake.base_url, anthropic_fake.base_url)
        + f"""
cache:
  exact: {{path: "{home / "cache.db"}"}}
  semantic: {{enabled: true, index_path: "{home / "semantic.usearch"}"}}
ledger: {{path: "{home / "ledger.db"}", flush_interval_ms: 20}}
"""
    )
    async with running_gateway(config) as running:
        yield running


async def ask(gw: RunningGateway, messages: list[dict[str, str]]) -> tuple[str, dict[str, str]]:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(model="fast", messages=messages, temperature=0)  # type: ignore[arg-type]
    reply: Any = raw.parse()
    await gw.app.gateway.cache.drain()  # the answer is indexed in the background
    return reply.choices[0].message.content, dict(raw.headers)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_paraphrase_hits_the_semantic_tier(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    first, h1 = await ask(gw, user("What is the capital city of France?"))
    second, h2 = await ask(gw, user("capital city of france"))
    assert h1["x-tokenomy-cache"] == "miss"
    assert h2["x-tokenomy-cache"] == "hit-semantic" and float(h2["x-tokenomy-cache-similarity"]) >= 0.6
    assert second == first and len(openai_fake.requests) == 1


async def test_different_entities_do_not_hit(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    await ask(gw, user("What is the weather like in Paris today?"))
    _, h = await ask(gw, user("What is the weather like in London today?"))
    assert h["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 2


async def test_follow_up_never_hits_another_conversation(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    def convo(city: str) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": f"Tell me about {city}."},
            {"role": "assistant", "content": f"{city} is a large city."},
            {"role": "user", "content": "And what is its population?"},
        ]

    await ask(gw, convo("Paris"))
    _, h = await ask(gw, convo("Rome"))
    assert h["x-tokenomy-cache"] == "miss" and len(openai_fake.requests) == 2
    _, again = await ask(gw, convo("Paris"))
    assert again["x-tokenomy-cache"] == "hit-exact"


async def test_answer_is_findable_by_the_very_next_request(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    before = len(openai_fake.requests)
    system = {"role": "system", "content": "A context no earlier request had."}
    for question in ("How do I reverse a list in Python?", "how do i reverse a list in python"):
        raw = await client.chat.completions.with_raw_response.create(
            model="fast",
            messages=[system, *user(question)],
            temperature=0,  # type: ignore[list-item]
        )
        outcome = raw.headers["x-tokenomy-cache"]  # no drain: the second is sent as soon as the first returns
    assert outcome == "hit-semantic" and len(openai_fake.requests) == before + 1
    await gw.app.gateway.cache.drain()


async def test_unloadable_verifier_leaves_the_exact_tier_working(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    config = (
        proxy_config(openai_fake.base_url, anthropic_fake.base_url)
        + f"""
cache:
  exact: {{path: "{tmp_path / "cache.db"}"}}
  semantic: {{enabled: true, index_path: "{tmp_path / "s.usearch"}", model_path: "{broken}"}}
ledger: {{path: "{tmp_path / "ledger.db"}", flush_interval_ms: 20}}
"""
    )
    async with running_gateway(config) as running:
        before = len(openai_fake.requests)
        outcomes = [
            (await ask(running, user(q)))[1]["x-tokenomy-cache"] for q in ("Capital of Peru?", "capital of peru")
        ]
        _, again = await ask(running, user("Capital of Peru?"))
        assert outcomes == ["miss", "miss"] and again["x-tokenomy-cache"] == "hit-exact"
        assert len(openai_fake.requests) == before + 2 and running.app.gateway.semantic.off


async def test_audited_hit_is_answered_from_cache_and_checked_upstream(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> None:

    # every hit audited; the fake echoes the question, so only identical questions' answers agree
    config = semantic_config(openai_fake, anthropic_fake, tmp_path, "audit_share: 1.0, audit_agreement: 0.999")

    def audits(outcome: str) -> float:
        labels = {"task": "untagged", "outcome": outcome}
        return REGISTRY.get_sample_value("tokenomy_semantic_audits_total", labels) or 0.0

    async with running_gateway(config) as running:
        before, false_before = len(openai_fake.requests), audits("false")
        _, first = await ask(running, user("What is the capital city of Canada?"))
        _, second = await ask(running, user("capital city of canada"))  # ask() drains background work
        assert first["x-tokenomy-cache"] == "miss" and second["x-tokenomy-cache"] == "hit-semantic"
        assert len(openai_fake.requests) == before + 2  # the question, then the audit of the hit
        assert audits("false") == false_before + 1  # "echo: capital city of canada" is another answer
        estimate = REGISTRY.get_sample_value(
            "tokenomy_semantic_false_hit_rate", {"task": "untagged", "bound": "high95"}
        )
        assert estimate is not None and 0 < estimate <= 1
    saved = (tmp_path / "semantic-audits.json").read_text()  # for tokenomy report, written by the first audit
    assert '"total_false_hits": 1' in saved


async def test_suspended_task_goes_upstream_and_its_answer_audits_the_hit_for_free(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path: Path
) -> None:
    from tokenomy.cache.semantic.live import MAX_TIGHTEN, TaskStats
    from tokenomy.pipeline.cache import MAX_SHADOW_AUDITS, CacheStage

    # no audit share: while suspended every would-be hit is compared with the answer fetched anyway
    config = semantic_config(openai_fake, anthropic_fake, tmp_path, "audit_share: 0")

    def count(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def audits() -> float:
        labels = ({"task": "untagged", "outcome": o} for o in ("agree", "false"))
        return sum(count("tokenomy_semantic_audits_total", label) for label in labels)

    async with running_gateway(config) as running:
        live = running.app.gateway.semantic.live
        _, first = await ask(running, user("What is the capital city of Canada?"))
        live.tasks["untagged"] = TaskStats(offset=MAX_TIGHTEN, suspended=True)  # as the error budget leaves it
        before, audits_before = len(openai_fake.requests), audits()
        suspended_before = count("tokenomy_cache_lookups_total", {"tier": "semantic", "outcome": "suspended"})
        # the same question up to case and punctuation: a hit at any threshold, were the task not suspended
        answer, second = await ask(running, user("what is the capital city of canada"))
        assert first["x-tokenomy-cache"] == "miss" and second["x-tokenomy-cache"] == "miss"
        assert answer == "echo: what is the capital city of canada"  # the fresh answer, not the cached one
        assert len(openai_fake.requests) == before + 1  # the request itself: the shadow audit costs no call
        assert audits() == audits_before + 1
        assert count("tokenomy_cache_lookups_total", {"tier": "semantic", "outcome": "suspended"}) == (
            suspended_before + 1
        )
        assert live.tasks["untagged"].suspended and live.tasks["untagged"].total_audits == 1
        # streamed: the answer assembled from the stream is the one compared
        client = openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="fast",
            messages=user("What is the capital city of Canada"),  # type: ignore[arg-type]
            temperature=0,
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await running.app.gateway.cache.drain()
        assert text == "echo: What is the capital city of Canada" and audits() == audits_before + 2
        # a busy suspended task: past MAX_SHADOW_AUDITS running at once, comparisons are skipped
        stage = next(st for st in running.app.gateway.stages if isinstance(st, CacheStage))
        skipped_before = count("tokenomy_cache_lookups_total", {"tier": "semantic", "outcome": "shadow_skipped"})
        stage.shadow_audits = MAX_SHADOW_AUDITS
        try:
            _, third = await ask(running, user("What is the capital city of Canada ?"))
        finally:
            stage.shadow_audits = 0
        assert third["x-tokenomy-cache"] == "miss" and audits() == audits_before + 2
        assert count("tokenomy_cache_lookups_total", {"tier": "semantic", "outcome": "shadow_skipped"}) == (
            skipped_before + 1
        )


def semantic_config(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, home: Path, semantic: str) -> str:
    """A gateway config with the semantic tier on in ``home``, plus ``semantic``'s extra settings."""
    return (
        proxy_config(openai_fake.base_url, anthropic_fake.base_url)
        + f"""
cache:
  exact: {{path: "{home / "cache.db"}"}}
  semantic: {{enabled: true, index_path: "{home / "s.usearch"}", {semantic}}}
ledger: {{path: "{home / "ledger.db"}", flush_interval_ms: 20}}
"""
    )


def waits(result: str) -> float:
    return REGISTRY.get_sample_value("tokenomy_semantic_in_flight_waits_total", {"result": result}) or 0.0


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)


# -- paraphrases of a question still in flight ------------------------------------------------


async def ask_later(gw: RunningGateway, text: str, system: str, *, after: float = 0.0) -> tuple[str, dict[str, str]]:
    """(answer, response headers) of one question, sent ``after`` seconds from now."""
    await asyncio.sleep(after)
    messages = [{"role": "system", "content": system}, *user(text)]
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="fast",
        messages=messages,
        temperature=0,  # type: ignore[arg-type]
    )
    reply = raw.parse()
    return reply.choices[0].message.content or "", dict(raw.headers)


async def streamed(gw: RunningGateway, text: str, system: str, *, after: float) -> str:
    await asyncio.sleep(after)
    messages = [{"role": "system", "content": system}, *user(text)]
    stream = await client(gw).chat.completions.create(
        model="fast",
        messages=messages,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


@pytest.fixture
async def slow_first(gw: RunningGateway, openai_fake: OpenAIFake) -> AsyncIterator[None]:
    """Models loaded (a paraphrase pair asked once), then a slow upstream for the questions queued "slow"."""
    await ask_later(gw, "What is the capital city of Peru?", "Warm-up.")
    await ask_later(gw, "capital city of peru", "Warm-up.")
    await gw.app.gateway.cache.drain()
    openai_fake.reset()
    openai_fake.delay = 0.8
    yield
    openai_fake.delay = 5.0


async def test_paraphrase_waits_for_the_answer_in_flight(
    gw: RunningGateway,
    openai_fake: OpenAIFake,
    slow_first: None,
) -> None:
    openai_fake.queue_modes("slow")  # the first question takes 0.8 s upstream
    served = waits("served")
    (first, h1), (second, h2), third = await asyncio.gather(
        ask_later(gw, "What is the capital city of Japan?", "In-flight test one."),
        ask_later(gw, "capital city of japan", "In-flight test one.", after=0.3),
        streamed(gw, "What's the capital city of Japan?", "In-flight test one.", after=0.3),
    )
    assert (h1["x-tokenomy-cache"], h2["x-tokenomy-cache"]) == ("miss", "hit-semantic") and second == first == third
    assert int(h2["x-tokenomy-cache-waited-ms"]) > 0 and "x-tokenomy-cache-waited-ms" not in h1
    assert len(openai_fake.requests) == 1 and waits("served") == served + 2
    await gw.app.gateway.cache.drain()


async def test_paraphrase_goes_upstream_when_the_question_in_flight_fails(
    gw: RunningGateway,
    openai_fake: OpenAIFake,
    slow_first: None,
) -> None:
    openai_fake.queue_modes("slow+error_500")  # 0.8 s, then an error: nothing is stored
    missed = waits("missed")
    first, second = await asyncio.gather(
        ask_later(gw, "What is the capital city of Chile?", "In-flight test two."),
        ask_later(gw, "capital city of chile", "In-flight test two.", after=0.3),
        return_exceptions=True,
    )
    assert isinstance(first, openai.InternalServerError) and first.status_code == 502
    assert isinstance(second, tuple) and second[1]["x-tokenomy-cache"] == "miss" and second[0]  # upstream, alone
    assert len(openai_fake.requests) == 2 and waits("missed") == missed + 1
    await gw.app.gateway.cache.drain()


async def test_identical_requests_in_flight_still_coalesce_exactly(
    gw: RunningGateway,
    openai_fake: OpenAIFake,
    slow_first: None,
) -> None:
    openai_fake.queue_modes("slow")
    served = waits("served")
    results = await asyncio.gather(*(ask_later(gw, "Capital city of Kenya?", "In-flight test three.", after=i * 0.2)
                                     for i in range(3)))  # fmt: skip
    assert [h["x-tokenomy-cache"] for _, h in results] == ["miss", "coalesced", "coalesced"]
    assert len(openai_fake.requests) == 1
    assert waits("served") == served  # joined the identical flight, no semantic wait
    await gw.app.gateway.cache.drain()
