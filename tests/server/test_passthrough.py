"""Images, audio, moderations and rerank pass through to OpenAI-compatible deployments, with keys,
budgets, routing and a ledger record (official ``openai`` client, or plain HTTP for rerank)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_extras import SPEECH_BYTES
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.keys.record import hash_key


@pytest.fixture(scope="module")
async def gw(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> AsyncIterator[RunningGateway]:
    key = f"${{T_K:-{OPENAI_KEY}}}"
    models = {"img": "gpt-image-1", "tts": "tts-1", "stt": "whisper-1", "mod": "omni-moderation-latest",
              "rr": "bge-reranker"}  # fmt: skip
    lines = "".join(
        f'  - {{name: {name}, deployments: [{{provider: openai, base_url: "{openai_fake.base_url}", '
        f'api_key: "{key}", model: {upstream}}}]}}\n'
        for name, upstream in models.items()
    )
    config = f"""
auth:
  keys:
    - {{name: a, sha256: "{hash_key("sk-a")}", tenant: team-a}}
    - {{name: narrow, sha256: "{hash_key("sk-narrow")}", models: [img]}}
models:
{lines}  - {{name: claude, deployments: [{{provider: anthropic, base_url: "{anthropic_fake.base_url}",
                                   api_key: "${{T_A:-{ANTHROPIC_KEY}}}", model: claude-3-5-haiku-latest}}]}}
"""
    async with running_gateway(config) as running:
        yield running


def client(gw: RunningGateway, key: str = "sk-a") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.v1, api_key=key, max_retries=0)


async def test_images(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    result = await client(gw).images.generate(model="img", prompt="a red fox", n=2)
    assert result.data is not None and base64.b64decode(result.data[1].b64_json or "") == b"png:a red fox:1"
    sent = openai_fake.last
    assert sent.body["model"] == "gpt-image-1" and sent.headers["authorization"].endswith(OPENAI_KEY)
    await gw.flush_ledger()


async def test_speech_returns_audio_bytes(gw: RunningGateway) -> None:
    audio = await client(gw).audio.speech.create(model="tts", voice="alloy", input="hello")
    assert audio.content == SPEECH_BYTES + b"hello" and audio.response.headers["content-type"] == "audio/mpeg"


async def test_transcription_multipart(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    text = await client(gw).audio.transcriptions.create(model="stt", file=("clip.wav", b"RIFF1234", "audio/wav"))
    assert text.text == "heard 8 bytes of clip.wav"
    sent = openai_fake.last.body
    assert sent["model"] == "whisper-1" and sent["file"] == b"RIFF1234"
    plain = await client(gw).audio.transcriptions.create(
        model="stt", file=("clip.wav", b"RIFF", "audio/wav"), response_format="text", language="en"
    )
    assert plain == "heard 4 bytes of clip.wav" and openai_fake.last.body["language"] == "en"


async def test_moderations_and_model_field(gw: RunningGateway) -> None:
    result = await client(gw).moderations.create(model="mod", input=["nice day", "kill it"])
    assert [r.flagged for r in result.results] == [False, True] and result.model == "mod"


async def test_rerank_cohere_shape(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    async with httpx.AsyncClient() as http:
        ask = {"model": "rr", "query": "red fox", "documents": ["a blue whale", "the red fox", "fox"], "top_n": 2}
        reply = await http.post(f"{gw.v1}/rerank", headers={"authorization": "Bearer sk-a"}, json=ask)
    assert reply.status_code == 200, reply.text
    assert [r["index"] for r in reply.json()["results"]] == [1, 2]
    assert openai_fake.last.path == "/v1/rerank" and openai_fake.last.body["model"] == "bge-reranker"


async def test_keys_routing_errors_and_ledger(gw: RunningGateway, openai_fake: OpenAIFake) -> None:
    with pytest.raises(openai.AuthenticationError):
        await client(gw, "sk-wrong").images.generate(model="img", prompt="x")
    with pytest.raises(openai.PermissionDeniedError):
        await client(gw, "sk-narrow").moderations.create(model="mod", input="x")
    with pytest.raises(openai.BadRequestError) as refused:
        await client(gw).images.generate(model="claude", prompt="x")  # Anthropic serves no images
    assert refused.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as missing:
        await client(gw).images.generate(model="img", prompt="")
    assert missing.value.body["param"] == "prompt"  # type: ignore[index]
    openai_fake.queue_modes("error_400")
    with pytest.raises(openai.BadRequestError) as upstream:
        await client(gw).moderations.create(model="mod", input="x")
    assert "fake error_400" in upstream.value.message
    rows = await gw.ledger_rows(
        "SELECT endpoint, served_model, status, prompt_tokens FROM requests WHERE endpoint != 'chat' ORDER BY ts"
    )
    endpoints = {row[0] for row in rows}
    assert {"images", "speech", "transcriptions", "moderations", "rerank"} <= endpoints
    assert any(row[0] == "images" and row[3] == 3 for row in rows)  # priced from the reported usage
