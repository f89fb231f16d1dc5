"""The contract every semantic store keeps, run on the usearch index and on PostgreSQL with pgvector."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
import pytest
from tests.cache.semantic.fake_embedder import FakeEmbedder
from tests.support.postgres import PostgresServer

from tokenomy.cache.semantic import pgvector_store
from tokenomy.cache.semantic.index import VectorIndex, context_id
from tokenomy.cache.semantic.pgvector_store import PgVectorStore, StoreDown, StoreSlow
from tokenomy.cache.semantic.store import SemanticStore

EMBED = FakeEmbedder()
A, B = context_id("conversation A"), context_id("conversation B")
HIGH = context_id("a context whose fingerprint halves are at or above 2**63")
Factory = Callable[[int], SemanticStore]


def key(n: int) -> str:
    return f"{n:040x}"


def vec(text: str) -> np.ndarray:
    return EMBED.vectors([text])[0]


@pytest.fixture(params=["usearch", "pgvector-0.8", "pgvector-0.6"])
def make(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Stores of a given capacity, of the parametrised kind (pgvector: one fresh database per test).

    On pgvector 0.8 every context with an entry counts as large (``large_context=0``), so the
    searches go through the sign-bit index; pgvector 0.6 has none and scans every context."""
    if request.param == "usearch":
        yield lambda capacity: VectorIndex(capacity, 384)
        return
    server: PostgresServer = request.getfixturevalue(
        "pgvector_server" if request.param == "pgvector-0.8" else "pgvector06_server"
    )
    with server.database() as dsn:
        opened: list[PgVectorStore] = []

        def factory(capacity: int) -> SemanticStore:
            opened.append(PgVectorStore(dsn, capacity, 384, large_context=0 if request.param == "pgvector-0.8" else 1))
            return opened[-1]

        yield factory
        for store in opened:
            store.close_log()


def test_search_filters_by_context_and_threshold(make: Factory) -> None:
    store = make(100)
    text = "what is the capital of France"
    store.add(vec(text), A, key(1), text)
    store.add(vec(text), B, key(2), text)
    found = store.search(vec(text), A, 0.9)
    assert [(c.key, c.text) for c in found] == [(key(1), text)]
    assert found[0].similarity > 0.99
    assert store.search(vec(text), context_id("C"), 0.0) == []
    assert store.search(vec("something else entirely"), A, 0.9) == []
    assert store.has_context(A) and not store.has_context(context_id("C"))
    assert len(store) == 2


def test_results_are_best_first_and_above_the_threshold(make: Factory) -> None:
    store = make(100)
    texts = ["how do I sort a list", "how do I sort a list in python", "what time is it", "sort a list"]
    for i, text in enumerate(texts):
        store.add(vec(text), HIGH, key(i), text)
    query = vec("how do I sort a list")
    found = store.search(query, HIGH, 0.3)
    sims = [c.similarity for c in found]
    assert found[0].key == key(0) and sims == sorted(sims, reverse=True) and min(sims) >= 0.3
    exact = sorted((float(vec(t) @ query) for t in texts if float(vec(t) @ query) >= 0.3), reverse=True)
    assert np.allclose(sims, exact, atol=2e-3)  # the store finds what exact search finds (f16 rounding)


def test_stored_says_whether_this_text_is_under_this_key_in_this_context(make: Factory) -> None:
    store = make(100)
    text = "what is the capital of France"
    store.add(vec(text), A, key(1), text)
    assert store.stored(vec(text), A, key(1), text)
    assert not store.stored(vec(text), B, key(1), text)  # another context
    assert not store.stored(vec(text), A, key(2), text)  # another key
    other = "what is the capital of Spain"
    assert not store.stored(vec(other), A, key(1), other)  # another text


def test_oldest_entries_are_evicted(make: Factory) -> None:
    store = make(3)
    for i in range(4):
        store.add(vec(f"question {i}"), A, key(i), f"question {i}")
    assert len(store) == 3
    assert store.search(vec("question 0"), A, 0.99) == []
    assert [c.key for c in store.search(vec("question 3"), A, 0.99)] == [key(3)]


def test_remove_by_key(make: Factory) -> None:
    store = make(10)
    store.add(vec("q"), A, key(1), "q")
    store.add(vec("q"), B, key(1), "q")
    assert store.remove(key(1)) == 2
    assert store.search(vec("q"), A, 0.5) == [] and not store.has_context(A)
    assert store.remove(key(1)) == 0


def test_malformed_key_is_refused(make: Factory) -> None:
    store = make(10)
    with pytest.raises(ValueError, match="hex digits"):
        store.add(vec("q"), A, "not-a-key", "q")
    assert len(store) == 0


def test_two_gateways_share_one_pgvector_tier(pgvector_server: PostgresServer) -> None:
    with pgvector_server.database() as dsn:
        one, two = PgVectorStore(dsn, 100, 384), PgVectorStore(dsn, 100, 384)
        one.add(vec("capital of France"), A, key(7), "capital of France")
        assert [c.key for c in two.search(vec("capital of France"), A, 0.9)] == [key(7)]
        one.close_log()
        two.close_log()


def test_pgvector_outage_fails_fast_and_recovers(pgvector_server: PostgresServer) -> None:
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 100, 384)
        store.add(vec("capital of France"), A, key(7), "capital of France")
        pgvector_server.stop()
        try:
            with pytest.raises(StoreDown):
                store.search(vec("capital of France"), A, 0.9)
            started = time.monotonic()
            with pytest.raises(StoreDown):  # within the retry pause: no new connection attempt
                store.has_context(A)
            assert time.monotonic() - started < 0.5
        finally:
            pgvector_server.start()
        store._down_until = 0.0  # skip the retry pause instead of sleeping through it
        assert [c.key for c in store.search(vec("capital of France"), A, 0.9)] == [key(7)]
        store.close_log()


def test_pgvector_statement_timeout_is_not_an_outage(
    pgvector_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement cancelled by the server's timeout (one huge context's scan) fails that call only:
    the connection stays open and the next call runs at once, with no retry pause."""
    monkeypatch.setattr(pgvector_store, "STATEMENT_TIMEOUT_MS", 200)
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 100, 384)
        store.add(vec("capital of France"), A, key(7), "capital of France")
        with pytest.raises(StoreSlow, match="ran past 200 ms"):
            store._execute("SELECT pg_sleep(1)", ())  # stands in for a scan the server cancels
        started = time.monotonic()
        assert [c.key for c in store.search(vec("capital of France"), A, 0.9)] == [key(7)]
        assert time.monotonic() - started < 0.5 and store._down_until == 0.0
        store.close_log()


def test_bulk_add_is_searchable_and_bounded(make: Factory) -> None:
    store = make(3)
    texts = [f"bulk question {i}" for i in range(5)]
    contexts = np.array([A, A, B, A, HIGH], dtype=np.uint64)
    store.add_many(EMBED.vectors(texts), contexts, [key(i) for i in range(5)], texts)
    assert len(store) == 3  # only the newest three are kept
    assert store.search(vec(texts[0]), A, 0.99) == []
    assert [c.key for c in store.search(vec(texts[3]), A, 0.99)] == [key(3)]
    assert [c.key for c in store.search(vec(texts[4]), HIGH, 0.99)] == [key(4)]


def test_large_context_is_searched_through_the_sign_bit_index(
    pgvector_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``large_context`` entries a context is searched by sign bits (HNSW), then exactly; a
    small one by a scan. Both find what exact search finds."""
    texts = [f"question number {i} about topic {i % 7} and item {i * 13 % 101}" for i in range(400)]
    vectors = EMBED.vectors(texts)
    contexts = np.array([A if i < 390 else B for i in range(400)], dtype=np.uint64)
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 10_000, 384, large_context=50)
        statements: list[str] = []
        execute = store._execute
        monkeypatch.setattr(store, "_execute", lambda sql, params: statements.append(sql) or execute(sql, params))
        store.add_many(vectors, contexts, [key(i) for i in range(400)], texts)
        assert store.signs
        for i in (*range(0, 390, 13), *range(390, 400)):
            context = A if i < 390 else B
            statements.clear()
            found = store.search(vectors[i], context, 0.5)
            mine = np.arange(390) if context == A else np.arange(390, 400)
            sims = vectors[mine] @ vectors[i]
            exact = [key(int(j)) for j in mine[np.argsort(-sims)] if float(vectors[j] @ vectors[i]) >= 0.5][:32]
            assert [c.key for c in found] == exact
            assert any("binary_quantize" in sql for sql in statements) == (context == A)
        store.close_log()


def test_old_pgvector_scans_every_context(pgvector06_server: PostgresServer) -> None:
    with pgvector06_server.database() as dsn:
        store = PgVectorStore(dsn, 100, 384, large_context=0)
        store.add(vec("capital of France"), A, key(7), "capital of France")
        assert not store.signs  # pgvector 0.6 has no binary_quantize
        assert [c.key for c in store.search(vec("capital of France"), A, 0.9)] == [key(7)]
        store.close_log()


NOT_OWNER = (
    "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', "
    "MESSAGE = 'must be owner of table tokenomy_semantic'; END $$"
)


@pytest.mark.parametrize("statement", ["SELECT pg_sleep(1)", NOT_OWNER], ids=["too-slow", "not-owner"])
def test_sign_bit_index_that_cannot_be_built_leaves_scans(
    pgvector_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, statement: str
) -> None:
    """Building the index on a big existing table would run past the statement timeout, or the role
    does not own the table: the store says what to run and scans, instead of failing to connect."""
    monkeypatch.setattr(pgvector_store, "STATEMENT_TIMEOUT_MS", 200)
    monkeypatch.setattr(pgvector_store, "sign_index_sql", lambda ndim: statement)
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 100, 384, large_context=0)
        store.add(vec("capital of France"), A, key(7), "capital of France")
        assert not store.signs and "sign-bit index could not be built" in caplog.text and statement in caplog.text
        assert [c.key for c in store.search(vec("capital of France"), A, 0.9)] == [key(7)]
        store.close_log()


def test_failed_bulk_add_restores_the_statement_timeout(pgvector_server: PostgresServer) -> None:
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 100, 384)
        store.add(vec("capital of France"), A, key(7), "capital of France")
        wrong = np.ones((2, 3), dtype=np.float32)  # 3 dimensions where the table has 384
        with pytest.raises(psycopg.Error):
            store.add_many(wrong, np.array([A, A], dtype=np.uint64), [key(1), key(2)], ["a", "b"])
        assert store._execute("SHOW statement_timeout", ()) == [("2s",)]
        assert len(store) == 1 and [c.key for c in store.search(vec("capital of France"), A, 0.9)] == [key(7)]
        store.close_log()


def test_has_context_also_tells_the_search_whether_the_context_is_large(
    pgvector_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup asks has_context, then searches: with the sign-bit index one capped count answers
    both, and a large context counted within the last minute needs no query at all."""
    texts = [f"question {i}" for i in range(12)]
    contexts = np.array([A] * 10 + [B] * 2, dtype=np.uint64)
    with pgvector_server.database() as dsn:
        store = PgVectorStore(dsn, 1000, 384, large_context=5)
        store.add_many(EMBED.vectors(texts), contexts, [key(i) for i in range(12)], texts)
        statements: list[str] = []
        execute = store._execute
        monkeypatch.setattr(store, "_execute", lambda sql, params: statements.append(sql) or execute(sql, params))
        for context, text in ((A, texts[0]), (B, texts[11])):
            statements.clear()
            assert store.has_context(context)
            assert store.search(vec(text), context, 0.9)[0].text == text
            assert sum("count(*)" in sql for sql in statements) == 1 and len(statements) == 2
        statements.clear()
        assert store.has_context(A) and statements == []  # large, and counted moments ago
        assert store.remove(key(11)) == 1 and store.remove(key(10)) == 1
        assert not store.has_context(B)  # a removal forgets the counts
        store.close_log()
