"""The call context: everything one request carries through the stage chain.

Stages read and annotate the context; nothing else about a request is global. Responses flow
back as either a whole :class:`Completion` or a :class:`Stream` of OpenAI-shaped chunks.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenomy.config.models import Deployment, LogicalModel
    from tokenomy.keys.record import KeyRecord


def new_request_id() -> str:
    """A gateway request id: 128 random bits, so nobody can guess (and pre-claim) another's next id."""
    return "req_" + os.urandom(16).hex()


class Endpoint(StrEnum):
    """The internal operations; every wire format maps onto one of these."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    # passed through to OpenAI-compatible deployments as they are (server/passthrough_routes.py)
    IMAGES = "images"
    TRANSCRIPTIONS = "transcriptions"
    SPEECH = "speech"
    MODERATIONS = "moderations"
    RERANK = "rerank"


#: ``Completion.body["object"]`` of a passed-through answer that is not JSON (audio, text): ``raw``
#: holds it and ``body["content_type"]`` says what it is.
BINARY = "binary"
#: Endpoints whose requests and answers the gateway forwards without reading them.
PASSTHROUGH = frozenset(
    {Endpoint.IMAGES, Endpoint.TRANSCRIPTIONS, Endpoint.SPEECH, Endpoint.MODERATIONS, Endpoint.RERANK}
)


@dataclass(slots=True)
class NativeRequest:
    """The inbound request in its own wire format, for a provider that speaks that format natively.

    ``ctx.body`` is always the OpenAI chat translation (what every stage reads); a provider whose
    ``native_wires`` include ``wire`` sends ``body`` instead, so nothing is lost in translation
    (Responses API to OpenAI, Messages API to Anthropic). ``problems`` are the fields the
    translation could not carry, as ``(param, message)``: answered with a 400 only when the chosen
    deployment needs the translation. A stage that rewrites ``ctx.body`` sets ``ctx.native`` to
    ``None`` (the native body no longer describes the request).
    """

    wire: str
    body: dict[str, Any]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Usage:
    """Token counts of one response, as the provider reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # prompt tokens written to a provider's prompt cache (Anthropic)

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Read an OpenAI ``usage`` object; ``None`` when absent or malformed.

        A Responses API or Anthropic ``usage`` (a native answer stored by the cache) is read too.
        """
        if not isinstance(usage, dict):
            return None
        if "prompt_tokens" not in usage and "input_tokens" in usage:
            return cls.from_responses(usage) if "input_tokens_details" in usage else cls.from_anthropic(usage)
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        try:
            return cls(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int(prompt_details.get("cached_tokens") or 0) if isinstance(prompt_details, dict) else 0,
                reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0)
                if isinstance(completion_details, dict)
                else 0,
                cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0)
                if isinstance(prompt_details, dict)
                else 0,
            )
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage | None:
        """Read an Anthropic ``usage`` (its ``input_tokens`` leave out cache reads and writes)."""
        if not isinstance(usage, dict):
            return None
        try:
            cached = int(usage.get("cache_read_input_tokens") or 0)
            written = int(usage.get("cache_creation_input_tokens") or 0)
            return cls(
                prompt_tokens=int(usage.get("input_tokens") or 0) + cached + written,
                completion_tokens=int(usage.get("output_tokens") or 0),
                cached_tokens=cached,
            )
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_responses(cls, usage: Any) -> Usage | None:
        """Read a Responses API ``usage`` object (``input_tokens``...); ``None`` when absent or malformed."""
        if not isinstance(usage, dict):
            return None
        inputs = usage.get("input_tokens_details") or {}
        outputs = usage.get("output_tokens_details") or {}
        try:
            return cls(
                prompt_tokens=int(usage.get("input_tokens") or 0),
                completion_tokens=int(usage.get("output_tokens") or 0),
                cached_tokens=int(inputs.get("cached_tokens") or 0) if isinstance(inputs, dict) else 0,
                reasoning_tokens=int(outputs.get("reasoning_tokens") or 0) if isinstance(outputs, dict) else 0,
            )
        except (TypeError, ValueError):
            return None


@dataclass(slots=True)
class Completion:
    """A whole (non-streaming) response body in the OpenAI shape of its endpoint.

    ``raw`` is the upstream's own bytes for ``body`` when they can be sent as they are (an
    OpenAI-compatible upstream): the edge then skips re-serializing. A stage that changes
    ``body`` must return a new ``Completion`` without ``raw``.
    """

    body: dict[str, Any]
    usage: Usage | None = None
    raw: bytes | None = None


@dataclass(slots=True)
class Stream:
    """A streaming response: OpenAI-shaped chunks, produced lazily.

    ``chunks`` is consumed exactly once by the HTTP edge. ``aclose`` releases the upstream
    (it is called when the client goes away, so nobody pays for tokens nobody reads).
    """

    chunks: AsyncIterator[dict[str, Any]]
    aclose: Callable[[], Any] | None = None


Response = Completion | Stream


@dataclass(slots=True)
class CallContext:
    """One request's state, created by the HTTP edge and annotated by each stage."""

    request_id: str  # the gateway's own random id: the ledger's primary key
    endpoint: Endpoint
    body: dict[str, Any]
    model: str
    stream: bool = False
    include_usage: bool = False  # the client asked for a usage chunk on its stream
    headers: dict[str, str] = field(default_factory=dict)
    wire: str = "openai"  # the inbound wire format: "openai", "anthropic" or "responses"
    native: NativeRequest | None = None  # the inbound body, for providers that speak its format
    requested_model: str = ""  # the model name as the client sent it (the response's ``model``)
    tenant: str = "default"
    api_key_name: str | None = None
    task: str = "untagged"
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    logical_model: LogicalModel | None = None
    deployment: Deployment | None = None
    served_model: str | None = None
    usage: Usage | None = None
    status: int = 200
    error_type: str | None = None
    decisions: dict[str, Any] = field(default_factory=dict)
    # what the ledger needs beyond the above (set by the stages that decide them)
    arrived: float = field(default_factory=time.time)  # wall clock, for the ledger's timestamp
    finished: float | None = None  # perf_counter when the response was complete
    cache: str = "none"  # hit-exact | hit-semantic | miss | coalesced | bypass | none
    route: str | None = None  # how the deployment was chosen
    baseline_deployment: Deployment | None = None  # what the client's request would have used
    original_prompt_tokens: int | None = None  # before compression
    removed_prompt_tokens: int = 0  # prompt tokens the optimize stage removed (counted locally)
    prompt_cache: Any = None  # the optimize stage's PromptCachePlan for an Anthropic upstream
    extra_cost_usd: float = 0.0
    cached_item_tokens: int = 0  # embeddings: prompt tokens of the inputs answered from the cache
    savings: dict[str, float] = field(default_factory=dict)  # savings stages measured themselves, by lever
    shadow_of: str | None = None  # a shadow copy: the request id of the production request it copies
    response_body: dict[str, Any] | None = None  # a non-streamed answer (the ledger stores its text with store_prompts)
    streamed_text: list[str] | None = None  # streamed completion text, to count tokens when usage is missing
    finish_reason: str | None = None  # why the answer stopped, in OpenAI's words (set by the record stage)
    client_request_id: str | None = None  # the client's x-request-id: correlation only, not unique
    key: KeyRecord | None = None  # the caller's key, when the HTTP edge has authenticated it already

    def mark_first_token(self) -> None:
        """Record the time to first token once."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    @property
    def ttft(self) -> float | None:
        """Seconds from arrival to the first streamed token, if it streamed."""
        return None if self.first_token_at is None else self.first_token_at - self.started
