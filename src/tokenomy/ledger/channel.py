"""What gateway processes send the writer process, and how it is framed.

Each message is one msgpack-encoded struct (msgspec, ~1 µs for a ledger record) sent as one
datagram of a Unix ``SOCK_SEQPACKET`` socket: the kernel keeps message boundaries and delivers a
message whole or not at all, so there is no framing on the request path and a writer that dies
mid-read never sees half a record. The journal file (``ledger/journal.py``) stores the same bytes,
length-prefixed.
"""

from __future__ import annotations

import socket

import msgspec

from tokenomy.ledger.record import LedgerRecord

MAX_MESSAGE = 192 * 1024
"""Larger messages (a huge stored prompt, a large cache entry) take the slow path instead."""


class RecordMsg(msgspec.Struct, tag="r", array_like=True, gc=False):
    """A finished request's ledger record."""

    record: LedgerRecord


class CachePut(msgspec.Struct, tag="c", array_like=True, gc=False):
    """A level-2 exact-cache entry to store (already packed with its checksum)."""

    key: str
    value: bytes
    namespace: str
    model: str
    task: str
    expires: float


class Batch(msgspec.Struct, tag="b", array_like=True, gc=False):
    """Several messages sent as one (cache entries stored on the way back, with the record after them)."""

    items: list[RecordMsg | CachePut]


class Flush(msgspec.Struct, tag="f", array_like=True, gc=False):
    """Answer with an :class:`Ack` once everything sent before this is stored (or spooled)."""

    seq: int


class Stats(msgspec.Struct, tag="s", array_like=True, gc=False):
    """Answer at once with an :class:`Ack` (``seq`` 0) carrying the store's state (for the metrics),
    and ``journalled`` = this ``seq``: everything sent before it on the connection has been read and
    journalled, so it survives the writer being killed."""

    seq: int = 0


class Ack(msgspec.Struct, array_like=True, gc=False):
    """The writer's answer to a :class:`Flush`, with its store's state for the metrics."""

    seq: int
    store_up: bool
    written: int
    replayed: int
    journalled: int = 0


Message = RecordMsg | CachePut | Batch | Flush | Stats

encode = msgspec.msgpack.Encoder().encode
decode_message = msgspec.msgpack.Decoder(Message).decode
decode_ack = msgspec.msgpack.Decoder(Ack).decode


def connect(path: str) -> socket.socket:
    """A non-blocking connection to the writer's socket (raises ``OSError`` if nobody listens)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)  # capped by wmem_max
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
