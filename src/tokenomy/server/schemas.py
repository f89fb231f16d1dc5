"""Request schemas of the public API, validated with msgspec.

Validation gives every malformed request a 400 naming the offending field (``param``). The
schemas also feed the OpenAPI document. Fields the gateway does not know are passed through
to the provider untouched.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from msgspec import Meta, Struct

from tokenomy.config.models import ServerConfig
from tokenomy.errors import GatewayError, invalid_request
from tokenomy.server.asgi import Request

T = TypeVar("T")

Temperature = Annotated[float, Meta(ge=0, le=2)]
Probability = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, Meta(ge=1)]


class FunctionDefinition(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, kw_only=True):
    type: Literal["function"]
    function: FunctionDefinition


class ChatMessage(Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ResponseFormat(Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(Struct, kw_only=True):
    include_usage: bool | None = None


class ChatCompletionRequest(Struct, kw_only=True):
    """``POST /v1/chat/completions``."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


class CompletionRequest(Struct, kw_only=True):
    """``POST /v1/completions`` (legacy text completions)."""

    model: Annotated[str, Meta(min_length=1)]
    prompt: str | list[Any]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    echo: bool | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    user: str | None = None


class EmbeddingRequest(Struct, kw_only=True):
    """``POST /v1/embeddings``: a string, a list of strings, a token array or a list of token arrays."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None
    user: str | None = None


_AT = re.compile(r" - at `\$\.?(.*)`$")

MAX_JSON_DEPTH = 64
"""Default nesting limit of a request body. It must stay well under what the JSON serializer
writes (orjson: 254 levels), or a request that parsed would fail when sent upstream."""
MAX_JSON_NODES = 100_000
"""Default limit on the objects, arrays and object members of one request body (parse work)."""
SERIALIZER_DEPTH = 254
"""orjson's nesting limit when writing: the ceiling for any configured depth (with room for wrapping)."""


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH, max_nodes: int = MAX_JSON_NODES) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it.

    Besides syntax, the body's shape is bounded: nesting deeper than ``max_depth`` or more than
    ``max_nodes`` objects, arrays and members is refused before any other work is done.
    """
    if not raw:
        raise invalid_request("The request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    check_shape(data, max_depth, max_nodes)
    return data


async def read_json(req: Request, server: ServerConfig) -> dict[str, Any]:
    """Read the body (up to ``max_body_bytes``) and parse it within the configured shape limits."""
    raw = await req.body(server.max_body_bytes)
    return parse_json(raw, server.max_json_depth, server.max_json_nodes)


def check_shape(data: dict[str, Any] | list[Any], max_depth: int, max_nodes: int) -> None:
    """400 when ``data`` nests deeper than ``max_depth`` or holds more than ``max_nodes`` containers
    and object members (scalars inside arrays are not counted: token-id arrays stay cheap)."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > max_depth:
            raise invalid_request(f"The request body nests JSON deeper than {max_depth} levels.", code="json_too_deep")
        if type(value) is dict:
            nodes += len(value) + 1
            items: Any = value.values()
        else:
            nodes += 1
            items = value
        if nodes > max_nodes:
            raise invalid_request(
                f"The request body has more than {max_nodes} JSON objects, arrays and members.",
                code="json_too_complex",
            )
        for item in items:
            kind = type(item)
            if kind is dict or kind is list:
                push((item, depth + 1))


def validate(data: dict[str, Any], schema: type[T]) -> T:
    """Check ``data`` against ``schema``; 400 with the field path as ``param`` on failure."""
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        raise validation_error(str(exc)) from None


def validation_error(message: str) -> GatewayError:
    """A 400 from a msgspec message such as ``Expected `str`, got `int` - at `$.model```."""
    match = _AT.search(message)
    param = match.group(1) if match else None
    text = _AT.sub("", message)
    if param:
        text = f"Invalid value for '{param}': {text}"
    if text.startswith("Object missing required field"):
        field = text.split("`")[1] if "`" in text else None
        where = f"{param}." if param else ""
        param = f"{where}{field}" if field else param
        text = f"Missing required parameter: '{param}'."
    return invalid_request(text, param=param)


def check_embedding_input(value: str | list[Any]) -> None:
    """Inputs must be a string, strings, a token array, or token arrays (non-empty)."""
    if isinstance(value, str):
        return
    if not value:
        raise invalid_request("'input' must not be an empty list.", param="input")
    if all(isinstance(v, str) for v in value):
        return
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return
    if all(
        isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in v)
        for v in value
    ):
        return
    raise invalid_request(
        "'input' must be a string, a list of strings, a list of token ids, or a list of token-id lists.",
        param="input",
    )


def check_prompt(value: str | list[Any]) -> None:
    """Completion prompts follow the same shapes as embedding inputs."""
    try:
        check_embedding_input(value)
    except GatewayError as exc:
        raise invalid_request(exc.message.replace("'input'", "'prompt'"), param="prompt") from None
