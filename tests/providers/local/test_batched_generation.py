"""Several chat requests to the embedded model decoded together (``local.generation.parallel``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from tests.providers.local.local_support import (
    CHAT_MODEL,
    choose_embedded_variant,
    context,
    deployment,
    eventually,
    local_config,
)

from tokenomy.config.models import LocalGenerationConfig
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Completion, Endpoint, Stream
from tokenomy.providers.local.batched import AUTO_SEQUENCES, SequenceBatch, auto_sequences, batchable
from tokenomy.providers.local.generation import LlamaEngine, default_model_path
from tokenomy.providers.local.params import GenerationParams
from tokenomy.providers.local.provider import LocalProvider
from tokenomy.providers.local.variants import models_dir, variant_path

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


async def test_a_later_prompt_starts_from_the_cells_kept(provider: LocalProvider) -> None:
    """The chat template's system prompt is read once; asking again gives the same greedy answer."""
    batch = batch_of(provider)
    first = await chat(provider, "What is the capital of Japan?", temperature=0, max_tokens=8)
    before = batch.reused
    again = await chat(provider, "What is the capital of Japan?", temperature=0, max_tokens=8)
    prompt_tokens = again.body["usage"]["prompt_tokens"]
    assert batch.reused - before == prompt_tokens - 1  # all but the last token, read for its logits
    assert again.body["choices"][0]["message"] == first.body["choices"][0]["message"]
    before = batch.reused
    await chat(provider, "What is the capital of Italy?", temperature=0, max_tokens=4)
    assert 10 < batch.reused - before < prompt_tokens - 1  # the shared beginning only


async def test_concurrent_prompts_share_a_running_answers_cells(provider: LocalProvider) -> None:
    batch = batch_of(provider)
    body = {"messages": [{"role": "user", "content": "Count to one hundred."}], "max_tokens": 40, "stream": True}
    response = await provider.send(context(Endpoint.CHAT, body), DEP)
    assert isinstance(response, Stream)
    chunks = response.chunks.__aiter__()
    await chunks.__anext__()
    await chunks.__anext__()
    # every other sequence forgets its cells, so only the running answer can lend its prefix
    running = [s for s in batch.held if s not in batch.free]
    for slot in batch.free:
        batch.held.pop(slot, None)
    before = batch.reused
    answer = await chat(provider, "Count to ten.", temperature=0, max_tokens=6)
    assert batch.reused - before > 10 and answer.body["usage"]["completion_tokens"] > 0
    assert len(running) == 1
    await response.aclose()


def test_auto_decodes_together_for_floating_point_files_only() -> None:
    assert [auto_sequences(t) for t in ("0", "1", "32")] == [AUTO_SEQUENCES] * 3  # f32, f16, bf16
    assert [auto_sequences(t) for t in ("2", "3", "7", "15")] == [1] * 4  # q4_0, q4_1, q8_0, q4_k_m
    assert auto_sequences(None, "llama 256M F16") == AUTO_SEQUENCES
    assert auto_sequences(None, "llama 256M Q4_1") == 1
    assert auto_sequences("odd", "") == 1


@pytest.mark.parametrize(("variant", "expected"), [("shipped", 1), ("f16", AUTO_SEQUENCES)])
async def test_auto_follows_the_model_file(variant: str, expected: int) -> None:
    await asyncio.to_thread(choose_embedded_variant)  # makes the f16 file (cached after the first run)
    path = variant_path(default_model_path(), variant, models_dir())
    engine = LlamaEngine(path, n_threads=1, parallel=None)
    await asyncio.to_thread(engine.load, False)
    try:
        assert engine.parallel == expected
        assert (engine.batch is not None) == (expected > 1)
        if engine.batch is not None:
            assert sorted(engine.batch.free) == list(range(expected))
    finally:
        await asyncio.to_thread(engine.close)


def test_parallel_config() -> None:
    assert LocalGenerationConfig().parallel == "auto"
    assert LocalGenerationConfig(parallel=8).parallel == 8
    for bad in (0, 65, "many"):
        with pytest.raises(ValidationError):
            LocalGenerationConfig(parallel=bad)
