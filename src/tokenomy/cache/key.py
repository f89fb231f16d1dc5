"""The exact-cache key: a canonical hash of everything in a request that changes the answer.

The key covers the namespace (tenant, or a declared shared namespace), the endpoint, the logical
model and the whole request body except fields that cannot change the answer (streaming
options, the end-user id, metadata, storage flags). Unknown fields are included: a parameter we
do not know about may change the answer, so two requests differing in it never share an entry.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

IGNORED_FIELDS = frozenset(
    {"model", "stream", "stream_options", "user", "metadata", "store", "service_tier", "prompt_cache_key",
     "safety_identifier"}
)  # fmt: skip


def exact_key(namespace: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    """A hex key for the request (stable across field order and processes)."""
    relevant = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    payload = orjson.dumps([namespace, endpoint, model, relevant], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(payload, digest_size=20).hexdigest()


def deterministic(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether the same request must get the same answer: temperature 0 or a fixed seed.

    OpenAI's default temperature is 1, so a request without one is not deterministic.
    Embeddings always are.
    """
    if endpoint == "embeddings":
        return True
    if body.get("seed") is not None:
        return True
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and temperature == 0


def item_key(namespace: str, model: str, options: dict[str, Any], item: Any) -> str:
    """The key of one embeddings input under the request's options (e.g. ``dimensions``)."""
    payload = orjson.dumps([namespace, "embedding", model, options, item], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(payload, digest_size=20).hexdigest()
