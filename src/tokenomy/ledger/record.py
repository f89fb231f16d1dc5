"""One usage record per request: what happened, what it cost, and what it would have cost.

The record is written by the outermost ``record`` stage for every request, errors included.
``baseline_cost_usd`` is the counterfactual cost with no lever applied (the requested model, the
original prompt, no cache); ``saved_*_usd`` split ``baseline - cost`` by the lever that saved it.
"""

from __future__ import annotations

import msgspec

LEVERS: tuple[str, ...] = ("cache", "routing", "compression", "batching")
"""Levers whose savings are recorded; each has a ``saved_<lever>_usd`` column."""

TOKEN_SOURCES = ("provider", "counted", "approx", "none")
"""Where token counts came from: the provider's usage, an exact local tokenizer, an estimate."""


class LedgerRecord(msgspec.Struct, kw_only=True, gc=False):
    """A row of the usage ledger (also the line format of the spool file).

    ``gc=False``: records hold only scalars, so the garbage collector need not track the
    thousands waiting in the writer's queue.
    """

    request_id: str  # the gateway's random id (primary key); never chosen by the client
    ts: float  # arrival time, seconds since the epoch (UTC)
    api_key: str | None = None  # the virtual key's name, never the key
    tenant: str = "default"
    end_user: str | None = None  # the request's ``user`` field
    task: str = "untagged"
    endpoint: str = "chat"
    wire: str = "openai"
    requested_model: str = ""
    served_model: str | None = None
    deployment: str | None = None
    provider: str | None = None
    stream: bool = False
    status: int = 200
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    token_source: str = "none"
    language: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    cache: str = "none"  # hit-exact | hit-semantic | miss | coalesced | bypass | none
    route: str | None = None  # the route decision, e.g. "round-robin:openai/gpt-4o-mini"
    price_source: str = "unknown"  # config | genai-prices | self-hosted | default | unknown
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    saved_cache_usd: float = 0.0
    saved_routing_usd: float = 0.0
    saved_compression_usd: float = 0.0
    saved_batching_usd: float = 0.0
    prompt_hash: str | None = None
    prompt: str | None = None  # only when ``ledger.store_prompts`` is on
    client_request_id: str | None = None  # the client's x-request-id: a correlation field, not unique
    response: str | None = None  # the answer's text, only when ``ledger.store_prompts`` is on (replay reads it)
    shadow_of: str | None = None  # a shadow copy: the production request it copies (not production spend)
    finish_reason: str | None = None  # why the answer stopped, in OpenAI's words (``length``: cut at the limit)

    def saved(self) -> dict[str, float]:
        """Savings by lever."""
        return {lever: getattr(self, f"saved_{lever}_usd") for lever in LEVERS}


COLUMNS: tuple[str, ...] = tuple(LedgerRecord.__struct_fields__)
"""Column order shared by the stores (the table has exactly these columns)."""


def as_row(record: LedgerRecord) -> tuple[object, ...]:
    """The record's values in :data:`COLUMNS` order."""
    return msgspec.structs.astuple(record)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LedgerRecord)


def encode_line(record: LedgerRecord) -> bytes:
    """One spool-file line (JSON plus newline)."""
    return _encoder.encode(record) + b"\n"


def decode_line(line: bytes) -> LedgerRecord:
    """Parse one spool-file line; raises ``msgspec.ValidationError``/``DecodeError`` if broken."""
    return _decoder.decode(line)
