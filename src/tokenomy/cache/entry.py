"""Cached answers as bytes: a checksummed envelope, so a corrupted or truncated entry is detected.

Layout: ``b"TKC1"`` + 16-byte BLAKE2b digest of the payload + msgpack payload. Anything that does
not verify raises :class:`CorruptEntry`; the cache treats it as a miss and deletes it.
"""

from __future__ import annotations

import hashlib
import time

import msgspec

MAGIC = b"TKC1"
_DIGEST = 16


class CorruptEntry(Exception):
    """A stored entry failed verification."""


class CacheEntry(msgspec.Struct, array_like=True):
    """One cached answer with what the ledger and the invalidation API need about it."""

    body: bytes  # the response body (OpenAI JSON of its endpoint), as sent to the client
    created: float  # epoch seconds
    expires: float  # epoch seconds
    model: str  # the logical model it answered for
    task: str
    namespace: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def fresh(self, now: float | None = None, max_age: float | None = None) -> bool:
        """Still valid, and (if the client set ``max-age``) young enough."""
        now = time.time() if now is None else now
        if now >= self.expires:
            return False
        return max_age is None or now - self.created <= max_age


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CacheEntry)


def pack(entry: CacheEntry) -> bytes:
    """The stored form of an entry."""
    payload = _encoder.encode(entry)
    return MAGIC + hashlib.blake2b(payload, digest_size=_DIGEST).digest() + payload


def unpack(data: bytes) -> CacheEntry:
    """Verify and decode a stored entry; :class:`CorruptEntry` if it does not verify."""
    if len(data) < len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        raise CorruptEntry("not a cache entry")
    digest, payload = data[len(MAGIC) : len(MAGIC) + _DIGEST], data[len(MAGIC) + _DIGEST :]
    if hashlib.blake2b(payload, digest_size=_DIGEST).digest() != digest:
        raise CorruptEntry("checksum mismatch (truncated or corrupted)")
    try:
        return _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptEntry(f"undecodable entry: {exc}") from None
