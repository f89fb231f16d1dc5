"""Property-based fuzzing of the public POST endpoints against a real gateway (schemathesis + Hypothesis).

The non-negotiable this proves: whatever body a client sends, the gateway answers with a success or
with a JSON error in the called API's own format and a 4xx status -- never a 500, never a stack trace.

How it works: a gateway in front of the fake upstreams serves on loopback. Its published OpenAPI
document (``GET /openapi.json``) is fetched and narrowed for fuzzing: ``model`` becomes an enum of the
names the gateway itself lists at ``GET /v1/models`` (so most requests get past routing and reach a
fake upstream); ``/v1/messages``, published as "any object", gets an Anthropic Messages request
schema (:data:`MESSAGES_REQUEST`); chat content parts, tool calls, prompts and embedding inputs get
their real shapes, so the provider translations run on what is generated. schemathesis turns each
operation into a Hypothesis strategy of requests: positive mode generates valid bodies, negative mode
bodies that break the schema (wrong types, missing fields, values out of range, bodies that are not
objects). Whole floats such as ``2.0`` become integers again in positive mode (see
:func:`whole_floats_to_ints`). Hypothesis runs in a worker thread, sending each request with
``requests`` while the test's event loop keeps serving the gateway and the fakes. The search is
derandomized, so every run sends the same requests. A 502 is allowed only as an upstream error (the
fake refused or failed on what it was sent), a 504 only as an upstream timeout (the ``tight`` model).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import Case, GenerationMode
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

#: Examples per endpoint and mode. CI runs the default; ``TOKENOMY_FUZZ_EXAMPLES=2000`` searches deeper, and
#: ``TOKENOMY_FUZZ_SEED=<int>`` swaps the fixed (derandomized) search for a seeded one.
MAX_EXAMPLES = int(os.environ.get("TOKENOMY_FUZZ_EXAMPLES", "60"))
SEED = os.environ.get("TOKENOMY_FUZZ_SEED")
TIMEOUT_S = 10.0
ANTHROPIC_PATH = "/v1/messages"
REQUEST_SCHEMAS = {
    "/v1/chat/completions": "ChatCompletionRequest",
    "/v1/completions": "CompletionRequest",
    "/v1/embeddings": "EmbeddingRequest",
    ANTHROPIC_PATH: "MessagesRequest",
}

_TEXT_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_IMAGE_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "source"],
    "properties": {
        "type": {"const": "image"},
        "source": {
            "type": "object",
            "required": ["type", "media_type", "data"],
            "properties": {
                "type": {"const": "base64"},
                "media_type": {"enum": ["image/png", "image/jpeg"]},
                "data": {"type": "string", "minLength": 1},
            },
        },
    },
}
_TOOL_USE_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "id", "name", "input"],
    "properties": {
        "type": {"const": "tool_use"},
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "input": {"type": "object"},
    },
}
_TOOL_RESULT_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "tool_use_id"],
    "properties": {
        "type": {"const": "tool_result"},
        "tool_use_id": {"type": "string", "minLength": 1},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
        "is_error": {"type": "boolean"},
    },
}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_TOKENS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
#: ``prompt`` / ``input``: published as "a string or any list"; these are the shapes the gateway takes.
_TEXT_INPUTS: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "minItems": 1, "items": {"type": "string"}},
        _TOKENS,
        {"type": "array", "minItems": 1, "items": _TOKENS},
    ]
}

_DATA_URL = {
    "type": "string",
    "pattern": "^data:(image/(png|jpeg|gif)|application/pdf|text/plain);base64,[A-Za-z0-9+/=]{0,24}$",
}
_URL = {
    "anyOf": [_DATA_URL, {"type": "string", "pattern": "^https?://[a-z]{1,8}\\.test/[a-z]{0,8}$"}, {"type": "string"}]
}
#: OpenAI chat content parts and tool calls (published as "any object"), so the translations to Anthropic run.
_CHAT_PART: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "required": ["type", "text"],
            "properties": {
                "type": {"const": "text"},
                "text": {"type": "string"},
                "cache_control": {"type": "object", "properties": {"type": {"const": "ephemeral"}}},
            },
        },
        {
            "type": "object",
            "required": ["type", "image_url"],
            "properties": {
                "type": {"const": "image_url"},
                "image_url": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": _URL, "detail": {"enum": ["auto", "low", "high"]}},
                },
            },
        },
        {
            "type": "object",
            "required": ["type", "file"],
            "properties": {
                "type": {"const": "file"},
                "file": {"type": "object", "properties": {"file_data": _DATA_URL, "filename": {"type": "string"}}},
            },
        },
        {
            "type": "object",
            "required": ["type", "refusal"],
            "properties": {"type": {"const": "refusal"}, "refusal": {"type": "string"}},
        },
        {"type": "object"},
    ]
}
_TOOL_CALL: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "arguments": {
                    "anyOf": [{"type": "string"}, {"type": "string", "pattern": '^\\{"[a-z]{1,4}": ?[0-9]{1,3}\\}$'}]
                },
            },
        },
    },
}


def _turn(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A message of ``role`` whose content is a string or a list of ``blocks``."""
    return {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"const": role},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"anyOf": blocks}}]},
        },
    }


#: The Anthropic Messages request, as far as the gateway translates it (fuzzing only; not published).
MESSAGES_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    _turn("user", [_TEXT_BLOCK, _IMAGE_BLOCK, _TOOL_RESULT_BLOCK]),
                    _turn("assistant", [_TEXT_BLOCK, _TOOL_USE_BLOCK]),
                ]
            },
        },
        "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
        "temperature": _UNIT,
        "top_p": _UNIT,
        # top_k is left out: it is refused (400) on models served through a translation
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "stream": {"type": "boolean"},
        "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "input_schema"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "description": {"type": "string"},
                    "input_schema": {"type": "object"},
                },
            },
        },
        "tool_choice": {
            "anyOf": [
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"enum": ["auto", "any", "none"]},
                        "disable_parallel_tool_use": {"type": "boolean"},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "name"],
                    "properties": {"type": {"const": "tool"}, "name": {"type": "string", "minLength": 1}},
                },
            ]
        },
    },
}


@pytest.fixture(scope="module")
async def gateway(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> AsyncIterator[RunningGateway]:
    async with running_gateway(proxy_config(openai_fake.base_url, anthropic_fake.base_url)) as gw:
        yield gw


@pytest.fixture(scope="module")
async def fuzz_schema(gateway: RunningGateway) -> schemathesis.BaseSchema:
    """The gateway's own OpenAPI document, narrowed for fuzzing (see the module docstring)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/openapi.json") as resp:
            assert resp.status == 200
            doc: dict[str, Any] = await resp.json()
        async with http.get(f"{gateway.v1}/models") as resp:
            models = [m["id"] for m in (await resp.json())["data"]]
    assert models, "the gateway lists no models"
    return schemathesis.openapi.from_dict(narrow(doc, models))


def narrow(doc: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """Only the POST endpoints; ``model`` one of ``models``; real shapes for prompts, inputs and messages."""
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    schemas["MessagesRequest"] = copy.deepcopy(MESSAGES_REQUEST)
    schemas["CompletionRequest"]["properties"]["prompt"] = copy.deepcopy(_TEXT_INPUTS)
    schemas["EmbeddingRequest"]["properties"]["input"] = copy.deepcopy(_TEXT_INPUTS)
    message = schemas["ChatMessage"]["properties"]
    message["content"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": _CHAT_PART}, {"type": "null"}]}
    message["tool_calls"] = {"anyOf": [{"type": "array", "items": _TOOL_CALL}, {"type": "null"}]}
    doc["paths"] = {path: doc["paths"][path] for path in REQUEST_SCHEMAS}
    for path, name in REQUEST_SCHEMAS.items():
        schemas[name]["properties"]["model"] = {"type": "string", "enum": models}
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = {"$ref": f"#/components/schemas/{name}"}
    return doc


def whole_floats_to_ints(value: Any) -> Any:
    """``2.0`` -> ``2`` throughout ``value``.

    schemathesis spells some integers as whole floats (JSON Schema counts ``2.0`` as an integer); the
    gateway's msgspec validation refuses them with a 400, which would waste most positive examples.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [whole_floats_to_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: whole_floats_to_ints(v) for k, v in value.items()}
    return value


def describe(path: str, case: Case, response: requests.Response) -> str:
    """Everything needed to replay a failure."""
    try:
        body = json.dumps(case.body, ensure_ascii=False)
    except (TypeError, ValueError):
        body = repr(case.body)
    text = response.content.decode("utf-8", errors="replace")
    return f"POST {path}\nbody: {body[:3000]}\nstatus: {response.status_code}\nresponse: {text[:2000]}"


def check_openai_error(body: Any, where: str) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``; the ``error`` object."""
    assert isinstance(body, dict) and set(body) == {"error"}, f"not an OpenAI error\n{where}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) >= {"message", "type", "param", "code"}, f"bad error\n{where}"
    assert isinstance(error["message"], str) and error["message"], where
    assert isinstance(error["type"], str) and error["type"], where
    assert error["param"] is None or isinstance(error["param"], str), where
    assert error["code"] is None or isinstance(error["code"], str), where
    return error


def check_anthropic_error(body: Any, where: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``; the ``error`` object."""
    assert isinstance(body, dict) and body.get("type") == "error", f"not an Anthropic error\n{where}"
    error = body.get("error")
    assert isinstance(error, dict), where
    assert isinstance(error.get("type"), str) and error["type"], where
    assert isinstance(error.get("message"), str) and error["message"], where
    return error


def from_upstream(error: dict[str, Any], anthropic: bool) -> bool:
    """Whether an error reports the upstream failing, refusing or timing out (then a 502/504 is fine)."""
    if anthropic:  # the Anthropic format has no code: the gateway's upstream errors say "upstream"
        return error["type"] == "api_error" and "upstream" in error["message"].lower()
    return error["type"] in ("upstream_error", "timeout_error") and str(error["code"]).startswith("upstream_")


def sse_data(content: bytes) -> list[Any]:
    """The ``data:`` payloads of an event stream (JSON-decoded, except ``[DONE]``).

    Lines end at CR/LF only, as the SSE spec says; ``str.splitlines`` would also cut at U+2028 and
    U+0085, which JSON leaves unescaped inside strings.
    """
    out: list[Any] = []
    for line in content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def check_response(path: str, case: Case, response: requests.Response) -> None:
    """The contract: a success, or a 4xx (502: upstream only) JSON error in the endpoint's own format."""
    where = describe(path, case, response)
    anthropic = path == ANTHROPIC_PATH
    check_error = check_anthropic_error if anthropic else check_openai_error
    status = response.status_code
    assert b"Traceback" not in response.content, f"stack trace in the response\n{where}"
    assert "x-request-id" in response.headers, f"no x-request-id\n{where}"
    content_type = response.headers.get("content-type", "")
    if status == 200 and content_type.startswith("text/event-stream"):
        try:
            events = sse_data(response.content)
        except ValueError:
            raise AssertionError(f"an event that is not JSON\n{where}") from None
        assert events, f"empty event stream\n{where}"
        for data in events:  # a failure mid-stream is an error event: only the upstream's may show up
            if isinstance(data, dict) and "error" in data:
                assert from_upstream(check_error(data, where), anthropic), f"gateway error mid-stream\n{where}"
        last = events[-1]
        if anthropic:
            assert isinstance(last, dict) and last.get("type") in ("message_stop", "error"), f"stream cut\n{where}"
        else:
            assert last == "[DONE]", f"stream does not end in [DONE]\n{where}"
        return
    assert content_type.startswith("application/json"), f"{status} that is not JSON\n{where}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"body is not JSON\n{where}") from None
    if status == 200:
        assert isinstance(body, dict) and "error" not in body, f"200 carrying an error\n{where}"
        return
    error = check_error(body, where)
    # 504: the ``tight`` model's 0.5 s upstream timeout, which a large ``n`` can outlast.
    assert 400 <= status < 500 or (status in (502, 504) and from_upstream(error, anthropic)), (
        f"status {status} for client input\n{where}"
    )


def fuzz(schema: schemathesis.BaseSchema, base_url: str, path: str, mode: GenerationMode) -> list[int]:
    """Run the search for ``path`` in ``mode`` (blocking: call it from a worker thread); the statuses seen."""
    strategy = schema[path]["POST"].as_strategy(generation_mode=mode)
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        if mode is GenerationMode.POSITIVE:
            case.body = whole_floats_to_ints(case.body)
        # Sent with requests directly rather than ``case.call``, which reads only the first events of a stream.
        try:
            response = session.request(**case.as_transport_kwargs(base_url=base_url), timeout=TIMEOUT_S)
        except requests.RequestException as exc:  # a hang, a dropped connection, a crash
            raise AssertionError(f"no answer ({exc!r})\nPOST {path}\nbody: {case.body!r}"[:4000]) from None
        statuses.append(response.status_code)
        check_response(path, case, response)

    if SEED is not None:
        run = seed(int(SEED))(run)
    with requests.Session() as session:
        run()
    return statuses


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("path", list(REQUEST_SCHEMAS))
async def test_fuzzed_bodies_never_get_a_500(
    gateway: RunningGateway, fuzz_schema: schemathesis.BaseSchema, path: str, mode: GenerationMode
) -> None:
    # Hypothesis makes blocking HTTP calls, so it runs in a thread while this loop serves the gateway and fakes.
    statuses = await asyncio.to_thread(fuzz, fuzz_schema, gateway.url, path, mode)
    assert len(statuses) >= MAX_EXAMPLES // 2, f"only {len(statuses)} requests were sent to {path}"
    if mode is GenerationMode.POSITIVE:  # valid bodies must mostly get through to an upstream and back
        assert statuses.count(200) >= len(statuses) // 4, f"too few successes on {path}: {sorted(statuses)}"
    else:
        assert any(400 <= s < 500 for s in statuses), f"no invalid body was refused on {path}"
