"""The embedded chat model behind the other client protocols: the Responses API and the Anthropic
Messages API (count_tokens included), translated, with the official clients as callers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from tests.providers.local.local_support import CHAT_MODEL, local_config
from tests.support.gateway import RunningGateway, running_gateway


@pytest.fixture(scope="module")
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway(local_config(CHAT_MODEL, generation={"n_threads": 2})) as running:
        yield running


async def test_responses_on_the_local_model(gw: RunningGateway) -> None:
    client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    reply = await client.responses.create(model=CHAT_MODEL, input="Say hello.", max_output_tokens=16)
    assert reply.output_text and reply.usage is not None and 0 < reply.usage.output_tokens <= 16
    stream = await client.responses.create(model=CHAT_MODEL, input="Say hi.", max_output_tokens=16, stream=True)
    events = [e async for e in stream]
    assert events[-1].type in ("response.completed", "response.incomplete")
    with pytest.raises(openai.BadRequestError) as info:  # the local model takes no tools
        await client.responses.create(model=CHAT_MODEL, input="x", tools=[{"type": "function", "name": "f"}])  # type: ignore[list-item]
    assert info.value.body["param"] == "tools"  # type: ignore[index]


async def test_messages_and_count_tokens_on_the_local_model(gw: RunningGateway) -> None:
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)
    hi = [{"role": "user", "content": "Hi"}]
    message = await client.messages.create(model=CHAT_MODEL, max_tokens=12, messages=hi)  # type: ignore[arg-type]
    assert message.content and message.model == CHAT_MODEL
    raw = await client.messages.with_raw_response.count_tokens(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "one two three"}]
    )
    assert (await raw.parse()).input_tokens > 3 and raw.headers["x-tokenomy-token-count"] == "estimated"
