"""Presets for OpenAI-compatible hosts: ``provider: groq`` is the whole deployment config."""

from __future__ import annotations

import openai
import pytest
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.config import parse_config
from tokenomy.config.models import GatewayConfig
from tokenomy.providers.base import provider_factory, provider_kinds
from tokenomy.providers.presets import PRESETS, PresetProvider


def test_every_preset_is_a_provider_kind_with_its_host() -> None:
    assert set(PRESETS) <= set(provider_kinds())  # registered like the built-ins (entry points or fallback)
    config = parse_config("models: [{name: m, deployments: [{provider: groq, model: llama-3.3-70b-versatile}]}]")
    deployment = config.models[0].deployments[0]
    provider = provider_factory("groq")(config)
    assert isinstance(provider, PresetProvider)
    assert provider.url(deployment, "/chat/completions") == "https://api.groq.com/openai/v1/chat/completions"
    assert provider_factory("ollama")(config).url(deployment, "/x") == "http://127.0.0.1:11434/v1/x"  # type: ignore[attr-defined]


def test_hosted_presets_are_priced_self_hosted_ones_are_not() -> None:
    from tokenomy.pricing.prices import lookup

    assert lookup("llama-3.3-70b-versatile", "groq") is not None
    assert lookup("deepseek-chat", "deepseek") is not None
    assert lookup("llama-3.3-70b-versatile", "ollama") is None  # your own machine: price it in config


@pytest.mark.parametrize("kind", ["groq", "vllm"])
async def test_preset_round_trip(openai_fake: OpenAIFake, kind: str) -> None:
    config = GatewayConfig.model_validate({"models": [{"name": "m", "deployments": [
        {"provider": kind, "model": "some-model", "base_url": openai_fake.base_url,
         "api_key": "${T_K:-" + OPENAI_KEY + "}"}
    ]}]})  # fmt: skip
    async with running_gateway(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "echo: hi"
        assert openai_fake.last.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        answer = await client.responses.create(model="m", input="hi")  # no /responses at these hosts
        assert answer.output_text == "echo: hi" and openai_fake.last.path == "/v1/chat/completions"


async def test_mistral_gets_no_stream_options_and_usage_still_counts(openai_fake: OpenAIFake) -> None:
    config = GatewayConfig.model_validate({"models": [{"name": "m", "deployments": [
        {"provider": "mistral", "model": "mistral-small-latest", "base_url": openai_fake.base_url,
         "api_key": "${T_K:-" + OPENAI_KEY + "}"}]}]})  # fmt: skip
    openai_fake.mode = "mistral"  # 422 on stream_options, usage on the last chunk
    async with running_gateway(config) as gw:
        client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi there"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = [c async for c in stream]
        assert "stream_options" not in openai_fake.last.body
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hi there"
        assert any(c.usage is not None and c.usage.completion_tokens == 3 for c in chunks)
