"""Pure checks of chat and text-completion requests for the embedded llama.cpp model.

Everything the local model honours becomes a :class:`GenerationParams`; everything it cannot
honour is refused with a 400 that names the parameter, instead of being silently dropped.

Honoured: ``temperature``, ``top_p``, ``max_tokens`` / ``max_completion_tokens``, ``stop``,
``seed``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``logprobs`` /
``top_logprobs``, ``response_format`` (``json_object`` and ``json_schema``, enforced with a
llama.cpp grammar). Refused: ``n`` > 1, tools and functions, non-text content parts, ``echo``,
``suffix``, ``best_of`` > 1, several prompts in one completion request, audio output and
predicted outputs. Sampling defaults for unset values follow llama-cpp-python (chat:
temperature 0.2; completions: 0.8; top_p 0.95), with llama.cpp's top_k 40 and min_p 0.05.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tokenomy.errors import invalid_request

MAX_STOP = 4
MAX_TOP_LOGPROBS_CHAT = 20
MAX_LOGPROBS_COMPLETIONS = 5
_ROLES = {"system", "developer", "user", "assistant"}
_REFUSED = {
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
    "reasoning_effort": "reasoning effort",
}


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What the engine needs to sample one answer."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    top_logprobs: int | None = None  # None: no logprobs; 0..20: logprobs with that many alternatives
    grammar: str | None = None  # GBNF text (JSON mode or a JSON schema)


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """Chat messages, normalised to ``{"role", "content": str}`` for the model's chat template."""

    messages: tuple[dict[str, str], ...]


@dataclass(frozen=True, slots=True)
class TextPrompt:
    """A completion prompt: a text, or token ids of the model's vocabulary."""

    text: str | None = None
    tokens: tuple[int, ...] | None = None


def parse_chat(body: dict[str, Any], max_tokens_default: int, n_vocab: int) -> tuple[ChatPrompt, GenerationParams]:
    """Check a ``/v1/chat/completions`` body."""
    _refuse_common(body)
    for name in ("tools", "functions"):
        if body.get(name):
            raise invalid_request(f"The local model does not support {name} (function calling).", param=name)
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none", "auto"):
            raise invalid_request(f"The local model does not support {name}.", param=name)
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise invalid_request("The local model only produces text.", param="modalities")
    top_logprobs = _chat_logprobs(body)
    max_tokens = _max_tokens(body, ("max_completion_tokens", "max_tokens"), max_tokens_default)
    params = _params(body, max_tokens, default_temperature=0.2, top_logprobs=top_logprobs, n_vocab=n_vocab)
    return ChatPrompt(_messages(body.get("messages"))), params


def parse_completion(
    body: dict[str, Any], max_tokens_default: int, n_vocab: int
) -> tuple[TextPrompt, GenerationParams]:
    """Check a ``/v1/completions`` body."""
    _refuse_common(body)
    if body.get("echo"):
        raise invalid_request("The local model does not support echo.", param="echo")
    if body.get("suffix") is not None:
        raise invalid_request("The local model does not support suffix (insertion).", param="suffix")
    if body.get("best_of") not in (None, 1):
        raise invalid_request("The local model supports only best_of=1.", param="best_of")
    logprobs = body.get("logprobs")
    if logprobs is not None and (not _is_int(logprobs) or not 0 <= logprobs <= MAX_LOGPROBS_COMPLETIONS):
        raise invalid_request(f"'logprobs' must be an integer from 0 to {MAX_LOGPROBS_COMPLETIONS}.", param="logprobs")
    max_tokens = _max_tokens(body, ("max_tokens",), max_tokens_default, minimum=0)
    params = _params(body, max_tokens, default_temperature=0.8, top_logprobs=logprobs, n_vocab=n_vocab)
    return _prompt(body.get("prompt"), n_vocab), params


def _refuse_common(body: dict[str, Any]) -> None:
    if body.get("n") not in (None, 1):
        raise invalid_request("The local model returns one choice per request; 'n' must be 1.", param="n")
    for name, what in _REFUSED.items():
        if body.get(name) is not None:
            raise invalid_request(f"The local model does not support {what}.", param=name)


def _params(
    body: dict[str, Any], max_tokens: int, *, default_temperature: float, top_logprobs: int | None, n_vocab: int
) -> GenerationParams:
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", default_temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        stop=_stop(body.get("stop")),
        seed=_seed(body.get("seed")),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(body.get("logit_bias"), n_vocab),
        top_logprobs=top_logprobs,
        grammar=_grammar(body.get("response_format")),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid_request(f"'{name}' must be a number from {low:g} to {high:g}.", param=name)
    return float(value)


def _max_tokens(body: dict[str, Any], names: tuple[str, ...], default: int, minimum: int = 1) -> int:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < minimum:
            raise invalid_request(f"'{name}' must be an integer of at least {minimum}.", param=name)
        return int(value)
    return default


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid_request("'stop' must be a string or a list of strings.", param="stop")
    if len(stops) > MAX_STOP:
        raise invalid_request(f"'stop' takes at most {MAX_STOP} sequences.", param="stop")
    return tuple(s for s in stops if s)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise invalid_request("'seed' must be an integer.", param="seed")
    return int(value) & 0xFFFFFFFF


def _logit_bias(value: Any, n_vocab: int) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_request("'logit_bias' must map token ids to numbers.", param="logit_bias")
    bias: dict[int, float] = {}
    for key, amount in value.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            token = -1
        if not 0 <= token < n_vocab:
            raise invalid_request(f"'logit_bias' names {key!r}, not a token id of this model.", param="logit_bias")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not -100 <= amount <= 100:
            raise invalid_request("'logit_bias' values must be numbers from -100 to 100.", param="logit_bias")
        bias[token] = float(amount)
    return bias


def _chat_logprobs(body: dict[str, Any]) -> int | None:
    wanted = body.get("logprobs")
    top = body.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise invalid_request("'logprobs' must be a boolean.", param="logprobs")
    if top is not None:
        if not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS_CHAT:
            raise invalid_request(
                f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS_CHAT}.", param="top_logprobs"
            )
        if not wanted:
            raise invalid_request("'top_logprobs' needs 'logprobs' set to true.", param="top_logprobs")
    return (int(top) if top is not None else 0) if wanted else None


def _grammar(value: Any) -> str | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    from llama_cpp import llama_grammar

    if kind == "json_object":
        return str(llama_grammar.JSON_GBNF)
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid_request(
                "'response_format.json_schema.schema' must be a JSON schema object.", param="response_format"
            )
        try:
            return str(llama_grammar.json_schema_to_gbnf(json.dumps(schema)))
        except Exception as exc:
            raise invalid_request(
                f"The local model cannot enforce this JSON schema: {exc}", param="response_format"
            ) from None
    raise invalid_request(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.", param="response_format"
    )


def _messages(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise invalid_request("'messages' must be a non-empty list.", param="messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_request(f"'{where}' must be an object.", param=where)
        role = message.get("role")
        if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
            raise invalid_request("The local model does not support tool calls.", param=where)
        if role not in _ROLES:
            raise invalid_request(f"'{where}.role' must be one of {sorted(_ROLES)}.", param=f"{where}.role")
        content = _content(message.get("content"), f"{where}.content", allow_none=role == "assistant")
        out.append({"role": "system" if role == "developer" else str(role), "content": content})
    return tuple(out)


def _content(value: Any, param: str, *, allow_none: bool) -> str:
    if isinstance(value, str):
        return value
    if value is None and allow_none:
        return ""
    if isinstance(value, list):
        texts: list[str] = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise invalid_request(
                    f"The local model reads text only; '{param}' holds a {kind or 'malformed'} part.", param=param
                )
            texts.append(part["text"])
        return "".join(texts)
    raise invalid_request(f"'{param}' must be a string or a list of text parts.", param=param)


def _prompt(value: Any, n_vocab: int) -> TextPrompt:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]
    if isinstance(value, str):
        return TextPrompt(text=value)
    if isinstance(value, list) and value and all(_is_int(t) for t in value):
        if not all(0 <= t < n_vocab for t in value):
            raise invalid_request("'prompt' holds token ids outside this model's vocabulary.", param="prompt")
        return TextPrompt(tokens=tuple(value))
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str | list) for v in value):
        raise invalid_request("The local model takes one prompt per request.", param="prompt")
    raise invalid_request("'prompt' must be a string or a list of token ids.", param="prompt")
