"""The OpenAPI 3.1 document of the public API, generated from the request schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import orjson

from tokenomy import __version__
from tokenomy.server.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _post(summary: str, schema: str | None, streams: bool) -> dict[str, Any]:
    request = {"$ref": f"#/components/schemas/{schema}"} if schema else _ANY_OBJECT
    content: dict[str, Any] = {"application/json": {"schema": _ANY_OBJECT}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": {"description": "OK", "content": content},
                "default": {
                    "description": "Error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
    }


def _get(summary: str, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": {content_type: {"schema": _ANY_OBJECT}}}},
        }
    }


def _delete(summary: str) -> dict[str, Any]:
    return {"delete": {"summary": summary, "responses": {"200": {"description": "OK", "content": {
        "application/json": {"schema": _ANY_OBJECT}}}}}}  # fmt: skip


@cache
def openapi_document() -> bytes:
    """The document, serialized once."""
    (_, _, _), components = msgspec.json.schema_components(
        [ChatCompletionRequest, CompletionRequest, EmbeddingRequest], ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Tokenomy gateway", "version": __version__},
        "paths": {
            "/v1/chat/completions": _post("OpenAI chat completions", "ChatCompletionRequest", True),
            "/v1/completions": _post("OpenAI text completions", "CompletionRequest", True),
            "/v1/embeddings": _post("OpenAI embeddings", "EmbeddingRequest", False),
            "/v1/responses": _post("OpenAI Responses API", None, True),
            "/v1/responses/{response_id}": {**_get("A stored response"), **_delete("Delete a stored response")},
            "/v1/responses/{response_id}/input_items": _get("The input items of a stored response"),
            "/v1/messages": _post("Anthropic Messages API", None, True),
            "/v1/messages/count_tokens": _post("Anthropic token counting", None, False),
            "/v1/images/generations": _post("OpenAI image generation (passed through)", None, False),
            "/v1/audio/speech": _post("OpenAI text to speech (passed through; audio back)", None, False),
            "/v1/audio/transcriptions": _post("OpenAI transcription (passed through; multipart)", None, False),
            "/v1/moderations": _post("OpenAI moderations (passed through)", None, False),
            "/v1/rerank": _post("Rerank, Cohere/Jina shape (passed through)", None, False),
            "/v1/models": _get("Models clients may ask for"),
            "/v1/models/{model}": _get("One model"),
            "/healthz": _get("Liveness"),
            "/readyz": _get("Readiness: models loaded"),
            "/metrics": _get("Prometheus metrics", "text/plain"),
        },
        "components": {"schemas": components},
    }
    return orjson.dumps(doc)
