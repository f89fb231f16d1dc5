"""Several chat requests to the embedded model decoded together (``local.generation.parallel``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.providers.local.local_support import CHAT_MODEL, context, deployment, eventually, local_config

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Completion, Endpoint, Stream
from tokenomy.providers.local.batched import SequenceBatch, batchable
from tokenomy.providers.local.params import GenerationParams
from tokenomy.providers.local.provider import LocalProvider

DEP = deployment(CHAT_MODEL)
TOPICS = ["a cat", "the sea", "a city at night", "a mountain", "a robot", "the moon"]


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    p = LocalProvider(local_config(CHAT_MODEL, generation={"n_threads": 1, "parallel": 4, "max_tokens_default": 24}))
    await p.start()
    yield p
    await p.close()


def batch_of(provider: LocalProvider) -> SequenceBatch:
    assert provider.generator is not None and provider.generator.batch is not None
    return provider.generator.batch


async def chat(provider: LocalProvider, content: str, **extra: Any) -> Completion:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 12, **extra}
    response = await provider.send(context(Endpoint.CHAT, body), DEP)
    assert isinstance(response, Completion)
    return response


async def test_concurrent_requests_share_decode_steps(provider: LocalProvider) -> None:
    batch = batch_of(provider)
    before = batch.steps
    answers = await asyncio.gather(
        *(chat(provider, f"Write a long story about {topic}.", temperature=0) for topic in TOPICS[:3])
    )
    produced = sum(a.body["usage"]["completion_tokens"] for a in answers)
    for answer in answers:
        choice = answer.body["choices"][0]
        assert choice["message"]["content"].strip() and choice["finish_reason"] in {"stop", "length"}
    # one step advances every running answer: far fewer steps than tokens when they overlap
    assert produced > 24 and batch.steps - before < 0.6 * produced, (batch.steps - before, produced)
    assert sorted(batch.free) == [0, 1, 2, 3]  # every sequence was released


async def test_more_requests_than_sequences_queue_and_complete(provider: LocalProvider) -> None:
    answers = await asyncio.gather(
        *(chat(provider, f"Say something about {t}.", temperature=0.7, seed=7, max_tokens=4) for t in TOPICS[:5])
    )
    assert all(a.body["usage"]["completion_tokens"] > 0 for a in answers)
    assert sorted(batch_of(provider).free) == [0, 1, 2, 3]


async def test_grammar_request_waits_and_runs_alone(provider: LocalProvider) -> None:
    plain = [chat(provider, f"Write a long story about {topic}.", temperature=0, max_tokens=6) for topic in TOPICS[:2]]
    strict = chat(
        provider,
        "Give a JSON object with a key name.",
        temperature=0,
        max_tokens=8,
        response_format={"type": "json_object"},
    )
    *stories, structured = await asyncio.gather(*plain, strict)
    assert all(s.body["choices"][0]["message"]["content"] for s in stories)
    text = structured.body["choices"][0]["message"]["content"]
    if structured.body["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict)
    else:
        assert text.lstrip().startswith("{")


async def test_a_closed_stream_frees_its_sequence(provider: LocalProvider) -> None:
    body = {"messages": [{"role": "user", "content": "Count to one hundred."}], "max_tokens": 200, "stream": True}
    response = await provider.send(context(Endpoint.CHAT, body), DEP)
    assert isinstance(response, Stream)
    chunks = response.chunks.__aiter__()
    for _ in range(3):
        await chunks.__anext__()
    others = asyncio.gather(*(chat(provider, f"Describe {t}.", temperature=0, max_tokens=6) for t in TOPICS[:2]))
    await response.aclose()
    assert all(a.body["usage"]["completion_tokens"] > 0 for a in await others)
    engine = provider.generator
    assert engine is not None
    await eventually(lambda: engine._outstanding == 0 and sorted(batch_of(provider).free) == [0, 1, 2, 3])


async def test_too_long_prompt_is_a_400(provider: LocalProvider) -> None:
    with pytest.raises(GatewayError) as info:
        await chat(provider, "word " * 2100, temperature=0)
    assert info.value.status == 400 and info.value.code == "context_length_exceeded"


def test_what_runs_batched() -> None:
    assert batchable(GenerationParams(max_tokens=8, temperature=0.5, top_p=0.9, seed=1, presence_penalty=0.5))
    assert not batchable(GenerationParams(max_tokens=8, temperature=0, top_p=1, grammar='root ::= "a"'))
    assert not batchable(GenerationParams(max_tokens=8, temperature=0, top_p=1, logit_bias={2: -100.0}))
    assert not batchable(GenerationParams(max_tokens=8, temperature=0, top_p=1, top_logprobs=0))


async def test_greedy_answers_match_the_one_at_a_time_engine(provider: LocalProvider) -> None:
    """Same sampler chain, same tokens: two answers decoded side by side equal each decoded alone."""
    questions = ["What is the capital of France?", "Name three colors."]
    serial = LocalProvider(local_config(CHAT_MODEL, generation={"n_threads": 1}))
    await serial.start()
    try:
        alone = [(await chat(serial, q, temperature=0, max_tokens=8)).body for q in questions]
    finally:
        await serial.close()
    together = await asyncio.gather(*(chat(provider, q, temperature=0, max_tokens=8) for q in questions))
    for one, other in zip(alone, together, strict=True):
        assert other.body["choices"][0]["message"] == one["choices"][0]["message"]
        assert other.body["usage"] == one["usage"]


async def test_a_failed_step_fails_its_answers_and_the_engine_keeps_serving(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = batch_of(provider)
    real = batch.step

    def broken(running: Any) -> None:
        monkeypatch.setattr(batch, "step", real)  # only the first step fails
        raise RuntimeError("decode failed")

    monkeypatch.setattr(batch, "step", broken)
    with pytest.raises(GatewayError) as info:
        await chat(provider, "Write a long story about a cat.", temperature=0)
    assert info.value.status == 500
    assert sorted(batch.free) == [0, 1, 2, 3]
    answer = await chat(provider, "Write a long story about a cat.", temperature=0)
    assert answer.body["usage"]["completion_tokens"] > 0
