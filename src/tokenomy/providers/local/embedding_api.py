"""Pure translations for ``/v1/embeddings`` on the embedded model: request checks and response bodies.

Inputs follow OpenAI: a string, a list of strings, one token array, or a list of token arrays.
Token ids are ids of the *client's* tokenizer (OpenAI's ``cl100k_base`` unless configured or
known from the model name the client used): they are decoded to text, and the text is embedded.
The embedded model's own WordPiece ids are never assumed.
``encoding_format`` is ``"float"`` (lists of floats) or ``"base64"`` (the little-endian float32
bytes of each vector, base64-encoded, exactly as OpenAI sends them).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tokenomy.errors import invalid_request
from tokenomy.providers.local.embeddings import EMBEDDING_DIM, EmbedItem, FloatArray

MAX_INPUTS = 2048  # OpenAI's limit on inputs per request

EncodingFormat = Literal["float", "base64"]
Decode = Callable[[Sequence[int]], str]  # a client's token ids -> text


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A checked embeddings request."""

    items: list[EmbedItem]
    encoding_format: EncodingFormat


def parse_request(body: dict[str, Any], decode: Decode) -> EmbeddingRequest:
    """Check ``body`` and turn its ``input`` into model items; 400 with ``param`` when it is wrong."""
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != EMBEDDING_DIM:
        raise invalid_request(
            f"This model has a fixed output size of {EMBEDDING_DIM}; 'dimensions' is not supported.",
            param="dimensions",
        )
    given = body.get("encoding_format")
    fmt: EncodingFormat
    if given is None or given == "float":
        fmt = "float"
    elif given == "base64":
        fmt = "base64"
    else:
        raise invalid_request(
            f"Invalid value for 'encoding_format': {given!r}; expected 'float' or 'base64'.", param="encoding_format"
        )
    if "input" not in body:
        raise invalid_request("Missing required parameter: 'input'.", param="input")
    return EmbeddingRequest(parse_input(body["input"], decode), fmt)


def parse_input(value: Any, decode: Decode) -> list[EmbedItem]:
    """A string, strings, a token array or token arrays, as a list of texts (token arrays decoded)."""
    if isinstance(value, str):
        return [_text(value, "input")]
    if not isinstance(value, list) or not value:
        raise invalid_request(
            "'input' must be a non-empty string, a list of strings, a list of token ids, or a list of token-id lists.",
            param="input",
        )
    if len(value) > MAX_INPUTS:
        raise invalid_request(f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.", param="input")
    if all(isinstance(v, str) for v in value):
        return [_text(v, f"input[{i}]") for i, v in enumerate(value)]
    if all(_is_token(v) for v in value):
        return [_tokens(value, decode, "input")]
    if all(isinstance(v, list) for v in value):
        return [_tokens(v, decode, f"input[{i}]") for i, v in enumerate(value)]
    raise invalid_request(
        "'input' mixes kinds of items; use all strings, all token ids, or all token-id lists.", param="input"
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: str, param: str) -> str:
    if not value:
        raise invalid_request(f"'{param}' must not be an empty string.", param=param)
    return value


def _tokens(value: list[Any], decode: Decode, param: str) -> str:
    if not value:
        raise invalid_request(f"'{param}' must not be an empty token list.", param=param)
    if not all(_is_token(token) for token in value):
        raise invalid_request(f"'{param}' must be a list of integer token ids.", param=param)
    try:
        return decode(value)
    except ValueError as exc:
        raise invalid_request(f"'{param}' holds {exc}.", param=param) from None


def encode_vector(vector: FloatArray, encoding_format: EncodingFormat) -> list[float] | str:
    """A vector as OpenAI sends it: a list of floats, or base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    values: list[float] = np.asarray(vector, dtype=np.float32).tolist()
    return values


def decode_base64(data: str) -> FloatArray:
    """The inverse of ``encode_vector(..., "base64")`` (what OpenAI clients do)."""
    return np.frombuffer(base64.b64decode(data), dtype="<f4").astype(np.float32)


def response_body(
    model: str, vectors: Sequence[FloatArray], prompt_tokens: int, encoding_format: EncodingFormat
) -> dict[str, Any]:
    """The OpenAI ``list`` of ``embedding`` objects, with usage."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_vector(vector, encoding_format)}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
