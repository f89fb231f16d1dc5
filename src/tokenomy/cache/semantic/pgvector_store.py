"""The semantic tier's entries in PostgreSQL with pgvector, so several gateways share one tier.

One table holds every entry: a sequence number (the label), the 16-byte context fingerprint as
two integers, the 20-byte exact-tier key, the question's text and its unit vector
(``vector(384)``). A lookup reads only its own context's rows — a B-tree index on the context
finds them, and their inner products are computed exactly — so the store finds every entry an
exact search finds. A context with more than ``large_context`` entries (a single shared
namespace with no earlier turns) would cost a scan of all its rows; where the server's pgvector
is 0.8 or newer the store builds an HNSW index over the vectors' sign bits
(``binary_quantize``) and searches such a context through it, then compares the
:data:`SIGN_CANDIDATES` nearest by sign bits exactly, as the usearch store does past
``exact_scan_limit``. With an older pgvector every context is scanned. ``max_entries`` bounds the
table: each add deletes the entries more than ``max_entries`` labels older than itself.

**Outages.** Every call runs on the semantic worker thread with a 2 s connect and statement
timeout. When the server cannot be reached the call raises :class:`StoreDown`, which the cache
turns into a miss (lookups) or a warning (adds); for :data:`RETRY_S` after a failure calls fail
at once instead of waiting on the network again, then one call tries to reconnect. A statement
that runs past its timeout (a scan of one very large context) raises :class:`StoreSlow`: that
call misses, and the connection and every other context's calls go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector

from tokenomy.cache.semantic.index import Candidate, key_bytes

log = logging.getLogger("tokenomy.cache")

TABLE = "tokenomy_semantic"
TIMEOUT_S = 2
"""Seconds to connect."""
STATEMENT_TIMEOUT_MS = 2000
"""The longest a statement may run before the server cancels it (:class:`StoreSlow`)."""
RETRY_S = 5.0
"""After a failure, calls fail at once for this long before one tries to reconnect."""

SIGN_CANDIDATES = 256
"""Entries of a large context compared exactly: the nearest by their sign bits."""
EF_SEARCH = 400
"""``hnsw.ef_search`` for the sign-bit index (pgvector's default, 40, finds fewer of the nearest)."""
GRAPH_M = 32
GRAPH_EF_CONSTRUCTION = 128
"""The index's graph: twice pgvector's default links per node and ef_construction. With the defaults
(16, 64) a million entries in one context found exact search's best entry for 276 of 300 queries,
with these 300 of 300 (the build took 566 s against 178 s; docs/benchmarks.md)."""
SIZE_TTL_S = 60.0
"""How long a context's size class (larger than ``large_context`` or not) is remembered."""
SIZES_KEPT = 4096
"""The most contexts whose size class is remembered (the least recently asked are forgotten)."""
SIGNS_VERSION = (0, 8)
"""The pgvector that has ``binary_quantize``, HNSW over ``bit`` and iterative index scans (needed
when a filter on the context drops index matches)."""

_SIGN = 1 << 63


def _version(text: str) -> tuple[int, ...]:
    """``"0.8.5"`` as ``(0, 8, 5)``."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def sign_bits(ndim: int) -> str:
    """The SQL expression the sign-bit index is built on (a query must spell it the same way)."""
    return f"(binary_quantize(embedding)::bit({ndim}))"


def sign_index_sql(ndim: int) -> str:
    """The statement that creates the sign-bit index (Hamming distance, HNSW)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {TABLE}_signs ON {TABLE} USING hnsw ({sign_bits(ndim)} bit_hamming_ops) "
        f"WITH (m = {GRAPH_M}, ef_construction = {GRAPH_EF_CONSTRUCTION})"
    )


def _signed(value: int) -> int:
    """An unsigned 64-bit context half as PostgreSQL's signed ``bigint``."""
    return value - (1 << 64) if value >= _SIGN else value


class StoreDown(RuntimeError):
    """The PostgreSQL server cannot be reached (the lookup misses, the request goes on)."""


class StoreSlow(StoreDown):
    """A statement ran past :data:`STATEMENT_TIMEOUT_MS` and was cancelled: this call fails (a lookup
    misses), but the server is up, so the connection stays open and other calls go on at once."""


class PgVectorStore:
    """The semantic tier's store in PostgreSQL (see the module docstring); all methods are blocking."""

    remote = True
    dirty = False

    def __init__(self, dsn: str, capacity: int, ndim: int, large_context: int = 32_768) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.ndim = ndim
        self.large_context = large_context
        """Contexts with more entries are searched through the sign-bit index, where there is one."""
        self.signs = False
        """Whether the server has the sign-bit index (pgvector 0.8+); known once connected."""
        self._sizes: OrderedDict[tuple[int, int], tuple[bool, float]] = OrderedDict()
        self._dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._ready = False

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        """The open connection, reconnecting (and creating the table) when needed; caller holds the lock."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._down_until:
            raise StoreDown("the semantic store's PostgreSQL server was unreachable moments ago")
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )  # fmt: skip
            if not self._ready:
                self._create(conn)
            register_vector(conn)
            if self.signs:
                conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
                conn.execute("SET hnsw.iterative_scan = relaxed_order")  # the context filter drops matches
        except psycopg.OperationalError as exc:
            self._down_until = time.monotonic() + RETRY_S
            raise StoreDown(f"the semantic store's PostgreSQL server cannot be reached: {exc}") from exc
        self._conn = conn
        return conn

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (label bigserial PRIMARY KEY, ctx0 bigint NOT NULL, "
            f"ctx1 bigint NOT NULL, key bytea NOT NULL, text text NOT NULL, embedding vector({self.ndim}) NOT NULL)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_context ON {TABLE} (ctx0, ctx1)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_key ON {TABLE} (key)")
        found = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        self.signs = found is not None and _version(str(found[0])) >= SIGNS_VERSION and self._sign_index(conn)
        self._ready = True

    def _sign_index(self, conn: psycopg.Connection[Any]) -> bool:
        """Create the sign-bit index if missing; False (with a warning) when that takes too long or
        this role may not (only the table's owner may index it)."""
        sql = sign_index_sql(self.ndim)
        try:
            conn.execute(sql)
        except (psycopg.errors.QueryCanceled, psycopg.errors.InsufficientPrivilege) as exc:
            log.warning(
                "semantic store: the sign-bit index could not be built (%s); large contexts are scanned in full. "
                "An administrator can run, once: %s; gateways started after that use the index",
                str(exc).strip(), sql,
            )  # fmt: skip
            return False
        return True

    def _execute(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """Run one statement; a connection failure becomes :class:`StoreDown`."""
        with self._lock:
            conn = self._connect()
            try:
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
            except psycopg.errors.QueryCanceled as exc:  # not an outage: the autocommit connection is still good
                raise StoreSlow(f"the semantic store's statement ran past {STATEMENT_TIMEOUT_MS} ms: {exc}") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                conn.close()
                self._conn = None
                self._down_until = time.monotonic() + RETRY_S
                raise StoreDown(f"the semantic store's PostgreSQL server failed: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._execute(f"SELECT count(*) FROM {TABLE}", ())[0][0])

    def has_context(self, context: tuple[int, int]) -> bool:
        """Whether any entry has this context (a query: call it off the event loop). With the sign-bit
        index the same query also tells whether the context is large, so the search asks nothing more."""
        ctx = (_signed(context[0]), _signed(context[1]))
        if self.signs:
            return bool(self._remembered(ctx)) or self._count(ctx) > 0  # a large context counted lately has some
        rows = self._execute(f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE ctx0 = %s AND ctx1 = %s)", ctx)
        return bool(rows[0][0])

    def search(
        self, vector: npt.NDArray[np.float32], context: tuple[int, int], threshold: float, k: int = 32,
        max_k: int = 2048,
    ) -> list[Candidate]:  # fmt: skip
        """Up to ``k`` entries of ``context`` with similarity ≥ ``threshold``, best first (exact)."""
        del max_k  # exact within the context, or within its SIGN_CANDIDATES nearest by sign bits
        query = np.asarray(vector, dtype=np.float32)
        ctx = (_signed(context[0]), _signed(context[1]))
        if self.signs and self._large(ctx):
            bits = f"binary_quantize(%b)::bit({self.ndim})"
            rows = self._execute(  # the HNSW index orders the context's rows by sign bits; the nearest, exactly
                f"SELECT label, sim, key, text FROM (SELECT label, key, text, -(embedding <#> %b) AS sim FROM "
                f"(SELECT label, key, text, embedding FROM {TABLE} WHERE ctx0 = %s AND ctx1 = %s "
                f"ORDER BY {sign_bits(self.ndim)} <~> {bits} LIMIT {SIGN_CANDIDATES}) AS near) AS scored "
                "WHERE sim >= %s ORDER BY sim DESC LIMIT %s",
                (query, *ctx, query, float(threshold), int(k)),
            )
        else:
            rows = self._execute(  # the vector goes once, in binary (%b)
                f"SELECT label, sim, key, text FROM (SELECT label, key, text, -(embedding <#> %b) AS sim FROM {TABLE} "
                "WHERE ctx0 = %s AND ctx1 = %s) AS mine WHERE sim >= %s ORDER BY sim DESC LIMIT %s",
                (query, *ctx, float(threshold), int(k)),
            )
        return [Candidate(int(label), float(sim), bytes(key).hex(), str(text)) for label, sim, key, text in rows]

    def _large(self, ctx: tuple[int, int]) -> bool:
        """Whether the context holds more than ``large_context`` entries (remembered for a while)."""
        known = self._remembered(ctx)
        return self._count(ctx) > self.large_context if known is None else known

    def _remembered(self, ctx: tuple[int, int]) -> bool | None:
        """Whether the context is large, as counted within the last :data:`SIZE_TTL_S`; None if not."""
        known = self._sizes.get(ctx)
        if known is None or known[1] <= time.monotonic():
            return None
        self._sizes.move_to_end(ctx)
        return known[0]

    def _count(self, ctx: tuple[int, int]) -> int:
        """The context's entries, counted no further than ``large_context`` + 1 (the context index);
        remembers whether it is large."""
        rows = self._execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE ctx0 = %s AND ctx1 = %s LIMIT %s) AS capped",
            (*ctx, self.large_context + 1),
        )
        count = int(rows[0][0])
        self._sizes[ctx] = (count > self.large_context, time.monotonic() + SIZE_TTL_S)
        self._sizes.move_to_end(ctx)
        while len(self._sizes) > SIZES_KEPT:
            self._sizes.popitem(last=False)
        return count

    def stored(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> bool:
        """Whether ``text`` is already stored under ``key`` in ``context`` (by the key's index, not a scan)."""
        del vector  # the key and text say it exactly
        rows = self._execute(
            f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE key = %s AND ctx0 = %s AND ctx1 = %s AND text = %s)",
            (key_bytes(key), _signed(context[0]), _signed(context[1]), text),
        )
        return bool(rows[0][0])

    # -- writes --------------------------------------------------------------------------------

    def add(self, vector: npt.NDArray[np.float32], context: tuple[int, int], key: str, text: str) -> int:
        """Store an entry (deleting those ``capacity`` or more labels older); its label."""
        raw = key_bytes(key)
        rows = self._execute(
            f"WITH added AS (INSERT INTO {TABLE} (ctx0, ctx1, key, text, embedding) VALUES (%s, %s, %s, %s, %b) "
            f"RETURNING label), gone AS (DELETE FROM {TABLE} WHERE label <= (SELECT label FROM added) - %s) "
            "SELECT label FROM added",
            (_signed(context[0]), _signed(context[1]), raw, text, np.asarray(vector, dtype=np.float32), self.capacity),
        )
        return int(rows[0][0])

    def add_many(
        self, vectors: npt.NDArray[np.float32], contexts: npt.NDArray[np.uint64], keys: list[str], texts: list[str]
    ) -> None:
        """Bulk :meth:`add` in one ``COPY`` (``contexts`` is ``(n, 2)``, as ``context_id``)."""
        raw = [key_bytes(k) for k in keys]
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("SET statement_timeout = 0")  # a bulk load may take long; reset below
                copy = f"COPY {TABLE} (ctx0, ctx1, key, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
                with conn.cursor().copy(copy) as cp:
                    cp.set_types(["int8", "int8", "bytea", "text", "vector"])
                    for i in range(len(raw)):
                        cp.write_row((_signed(int(contexts[i, 0])), _signed(int(contexts[i, 1])), raw[i], texts[i],
                                      np.asarray(vectors[i], dtype=np.float32)))  # fmt: skip
                conn.execute(
                    f"DELETE FROM {TABLE} WHERE label <= (SELECT max(label) FROM {TABLE}) - %s", (self.capacity,)
                )
                conn.execute(f"ANALYZE {TABLE}")
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                conn.close()
                self._conn = None
                self._down_until = time.monotonic() + RETRY_S
                raise StoreDown(f"the semantic store's PostgreSQL server failed during a bulk add: {exc}") from exc
            finally:
                self._sizes.clear()  # contexts may have grown past large_context
                if not conn.closed:
                    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")

    def remove(self, key: str) -> int:
        """Forget every entry stored under ``key``; how many there were."""
        rows = self._execute(f"WITH gone AS (DELETE FROM {TABLE} WHERE key = %s RETURNING 1) SELECT count(*) FROM gone",
                             (key_bytes(key),))  # fmt: skip
        self._sizes.clear()  # a context may have shrunk, or emptied
        return int(rows[0][0])

    def save(self, path: object = None) -> None:
        """Nothing to do: every add is committed at once."""

    def close_log(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
