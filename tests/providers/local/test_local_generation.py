"""The embedded llama.cpp model through LocalProvider: answers, streams, cancellation, load shedding."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.providers.local.local_support import CHAT_MODEL, EMBED_MODEL, context, deployment, eventually, local_config

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Completion, Endpoint, Stream
from tokenomy.providers.local.provider import LocalProvider

DEP = deployment(CHAT_MODEL)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
EOS_BAN = {"2": -100, "0": -100}  # <|im_end|> and <|endoftext|>: generation runs to max_tokens


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LocalProvider]:
    p = LocalProvider(local_config(CHAT_MODEL, generation={"n_threads": 2, "max_tokens_default": 48}))
    await p.start()
    yield p
    await p.close()


async def complete(provider: LocalProvider, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
    response = await provider.send(context(endpoint, body), DEP)
    assert isinstance(response, Completion)
    return response


async def collect(stream: Stream) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream.chunks]


async def wait_idle(provider: LocalProvider) -> None:
    engine = provider.generator
    assert engine is not None
    await eventually(lambda: engine._outstanding == 0)


def test_only_referenced_models_are_built(provider: LocalProvider) -> None:
    assert provider.ready()
    assert provider.generator is not None and provider.embedder is None
    names = {entry["id"]: entry for entry in provider.catalog()}
    assert names[CHAT_MODEL]["loaded"] and not names[EMBED_MODEL]["loaded"]
    assert names[CHAT_MODEL]["capabilities"] == ["chat", "completions"]


async def test_chat_answer_and_usage(provider: LocalProvider) -> None:
    response = await complete(provider, Endpoint.CHAT, {"messages": QUESTION, "temperature": 0, "max_tokens": 24})
    body = response.body
    assert body["object"] == "chat.completion" and body["model"] == CHAT_MODEL
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 10 and 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.usage is not None and response.usage.completion_tokens == usage["completion_tokens"]


async def test_text_completion_runs_to_max_tokens(provider: LocalProvider) -> None:
    body = {"prompt": "Once upon a time", "max_tokens": 12, "logit_bias": EOS_BAN, "seed": 7}
    response = await complete(provider, Endpoint.COMPLETIONS, body)
    choice = response.body["choices"][0]
    assert response.body["object"] == "text_completion" and choice["text"]
    assert choice["finish_reason"] == "length"
    assert response.body["usage"]["completion_tokens"] == 12


async def test_seed_makes_sampling_repeatable(provider: LocalProvider) -> None:
    body = {"prompt": "My favourite food is", "max_tokens": 16, "temperature": 1.0, "seed": 1234}
    first = await complete(provider, Endpoint.COMPLETIONS, body)
    second = await complete(provider, Endpoint.COMPLETIONS, body)
    assert first.body["choices"][0]["text"] == second.body["choices"][0]["text"]


async def test_stream_yields_chunks_then_usage(provider: LocalProvider) -> None:
    body = {"messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 16}
    response = await provider.send(context(Endpoint.CHAT, body), DEP)
    assert isinstance(response, Stream)
    chunks = await collect(response)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    texts = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert sum(1 for t in texts if t) >= 2
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == CHAT_MODEL for c in chunks)


async def test_completion_stream(provider: LocalProvider) -> None:
    body = {"prompt": "1, 2, 3,", "stream": True, "max_tokens": 8, "logit_bias": EOS_BAN}
    response = await provider.send(context(Endpoint.COMPLETIONS, body), DEP)
    assert isinstance(response, Stream)
    chunks = await collect(response)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text and chunks[-1]["usage"]["completion_tokens"] == 8
    assert all(c["object"] == "text_completion" for c in chunks)


async def test_closing_the_stream_stops_generation_early(provider: LocalProvider) -> None:
    engine = provider.generator
    assert engine is not None
    await wait_idle(provider)
    before = engine.generated_tokens
    body = {"prompt": "Write a long story:", "stream": True, "max_tokens": 400, "logit_bias": EOS_BAN}
    response = await provider.send(context(Endpoint.COMPLETIONS, body), DEP)
    assert isinstance(response, Stream)
    received = 0
    async for _chunk in response.chunks:
        received += 1
        if received == 3:
            break
    assert response.aclose is not None
    await response.aclose()
    await wait_idle(provider)
    produced = engine.generated_tokens - before
    assert 3 <= produced < 100, produced  # stopped within a few tokens, far from 400


async def test_abandoned_whole_request_stops_generation(provider: LocalProvider) -> None:
    engine = provider.generator
    assert engine is not None
    await wait_idle(provider)
    before = engine.generated_tokens
    body = {"prompt": "Write a long story:", "max_tokens": 400, "logit_bias": EOS_BAN}
    task = asyncio.ensure_future(provider.send(context(Endpoint.COMPLETIONS, body), DEP))
    await eventually(lambda: engine.generated_tokens - before >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle(provider)
    assert engine.generated_tokens - before < 100


async def test_inference_runs_on_one_worker_thread(provider: LocalProvider) -> None:
    engine = provider.generator
    assert engine is not None and engine._thread is not None
    assert engine._thread.ident != threading.get_ident()
    assert engine._thread.is_alive()


async def test_json_object_mode_returns_json(provider: LocalProvider) -> None:
    body = {
        "messages": [{"role": "user", "content": "Describe a cat as a JSON object with name and age."}],
        "response_format": {"type": "json_object"},
        "temperature": 0,
        "max_tokens": 80,
    }
    response = await complete(provider, Endpoint.CHAT, body)
    content = response.body["choices"][0]["message"]["content"]
    if response.body["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(content), dict)
    else:
        assert content.lstrip().startswith("{")


async def test_chat_logprobs(provider: LocalProvider) -> None:
    body = {"messages": QUESTION, "temperature": 0, "max_tokens": 6, "logprobs": True, "top_logprobs": 3}
    response = await complete(provider, Endpoint.CHAT, body)
    choice = response.body["choices"][0]
    content = choice["logprobs"]["content"]
    assert content and "".join(e["token"] for e in content) == choice["message"]["content"]
    for e in content:
        assert e["logprob"] <= 0 and len(e["top_logprobs"]) == 3
        assert e["token"] == e["top_logprobs"][0]["token"]  # greedy: the chosen token is the most likely
        assert e["logprob"] == pytest.approx(e["top_logprobs"][0]["logprob"])


async def test_completion_logprobs(provider: LocalProvider) -> None:
    body = {"prompt": "The sky is", "temperature": 0, "max_tokens": 4, "logprobs": 2, "logit_bias": EOS_BAN}
    choice = (await complete(provider, Endpoint.COMPLETIONS, body)).body["choices"][0]
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == choice["text"]
    assert len(logprobs["token_logprobs"]) == 4 and all(len(t) <= 2 for t in logprobs["top_logprobs"])


async def test_stop_sequence(provider: LocalProvider) -> None:
    body = {"prompt": "1, 2, 3, 4, 5,", "temperature": 0, "max_tokens": 30, "stop": [" 8"]}
    choice = (await complete(provider, Endpoint.COMPLETIONS, body)).body["choices"][0]
    assert " 8" not in choice["text"]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        (Endpoint.CHAT, {"messages": QUESTION, "n": 2}, "n"),
        (Endpoint.CHAT, {"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        (Endpoint.CHAT, {"messages": QUESTION, "temperature": 5}, "temperature"),
        (Endpoint.COMPLETIONS, {"prompt": "x", "echo": True}, "echo"),
        (Endpoint.EMBEDDINGS, {"input": "x"}, "model"),
    ],
)
async def test_unsupported_requests_are_400(
    provider: LocalProvider, endpoint: Endpoint, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as info:
        await provider.send(context(endpoint, body), DEP)
    assert info.value.status == 400 and info.value.param == param


async def test_wrong_endpoint_message(provider: LocalProvider) -> None:
    with pytest.raises(GatewayError, match=f"model {CHAT_MODEL} does not support embeddings"):
        await provider.send(context(Endpoint.EMBEDDINGS, {"input": "x"}), DEP)


async def test_prompt_longer_than_the_context_is_400(provider: LocalProvider) -> None:
    long = "word " * 3000
    with pytest.raises(GatewayError) as info:
        await provider.send(context(Endpoint.CHAT, {"messages": [{"role": "user", "content": long}]}), DEP)
    assert info.value.status == 400 and info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"


async def test_full_queue_is_503() -> None:
    p = LocalProvider(local_config(CHAT_MODEL, generation={"n_threads": 2, "max_queue": 1}))
    await p.start()
    try:
        body = {"prompt": "Tell me a story:", "stream": True, "max_tokens": 300, "logit_bias": EOS_BAN}
        running = await p.send(context(Endpoint.COMPLETIONS, body), DEP)  # started: occupies the worker
        waiting = asyncio.ensure_future(p.send(context(Endpoint.COMPLETIONS, body), DEP))  # queued
        await asyncio.sleep(0.05)
        with pytest.raises(GatewayError) as info:
            await p.send(context(Endpoint.COMPLETIONS, body), DEP)
        assert info.value.status == 503 and "retry-after" in info.value.headers
        assert isinstance(running, Stream) and running.aclose is not None
        await running.aclose()
        second = await waiting
        assert isinstance(second, Stream) and second.aclose is not None
        await second.aclose()
    finally:
        await p.close()


def test_unknown_local_model_is_a_config_error() -> None:
    config = local_config(CHAT_MODEL)
    bad = config.model_copy(
        update={"models": (config.models[0].model_copy(update={"deployments": (deployment("gpt-5"),)}),)}
    )
    with pytest.raises(ValueError, match="unknown local model"):
        LocalProvider(bad)
