"""The vector index: context filter, eviction, removal, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.cache.semantic.fake_embedder import FakeEmbedder

from tokenomy.cache.semantic import context_blocks as blocks_module
from tokenomy.cache.semantic import index as index_module
from tokenomy.cache.semantic.index import VectorIndex, context_id

EMBED = FakeEmbedder()
A, B = context_id("conversation A"), context_id("conversation B")


def key(n: int) -> str:
    return f"{n:040x}"


def vec(text: str) -> np.ndarray:
    return EMBED.vectors([text])[0]


def test_search_filters_by_context_and_threshold() -> None:
    index = VectorIndex(100, 384)
    index.add(vec("what is the capital of France"), A, key(1), "what is the capital of France")
    index.add(vec("what is the capital of France"), B, key(2), "what is the capital of France")
    found = index.search(vec("what is the capital of France"), A, 0.9)
    assert [c.key for c in found] == [key(1)]
    assert found[0].similarity > 0.99
    assert index.search(vec("what is the capital of France"), context_id("C"), 0.0) == []
    assert index.search(vec("something else entirely"), A, 0.9) == []
    assert index.has_context(A) and not index.has_context(context_id("C"))


def _spied(index: VectorIndex, miss: bool = False) -> list[int]:
    """Record the ``expansion_search`` of each graph search; ``miss`` makes every one look elsewhere
    (as an approximate search that missed the query's region)."""
    graph = index._graph
    seen: list[int] = []
    search = graph.search
    elsewhere = vec("an unrelated place in the vector space")

    def spy(query: np.ndarray, count: int) -> object:
        seen.append(graph.expansion_search)
        return search(elsewhere if miss else query, count)

    graph.search = spy  # type: ignore[method-assign]
    return seen


def test_a_large_context_searched_in_vain_is_scanned_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "EXACT_SCAN", 10)  # the context below counts as large
    index = VectorIndex(1000, 384)
    for i in range(100):
        index.add(vec(f"question number {i}"), A, key(i + 1), f"question number {i}")
    seen = _spied(index)
    assert index.search(vec("question number 7"), A, 0.9)[0].key == key(8)
    assert seen == [index_module.EXPANSION_SEARCH]  # found at once: one search
    seen = _spied(index, miss=True)  # the graph search misses: the context's block is scanned
    found = index.search(vec("question number 7"), A, 0.9)
    assert found[0].key == key(8) and found[0].similarity > 0.99
    assert seen == [index_module.EXPANSION_SEARCH]  # no wider graph search
    assert index.search(vec("question number 7"), A, 0.9, k=4, max_k=4) == []  # a duplicate check: graph only


def _spied_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every exact block scan."""
    sizes: list[int] = []
    scan = blocks_module.exact_search

    def spy(vectors: np.ndarray, *args: object, **kwargs: object) -> object:
        sizes.append(len(vectors))
        return scan(vectors, *args, **kwargs)

    monkeypatch.setattr(blocks_module, "exact_search", spy)
    return sizes


def test_a_block_over_the_scan_limit_is_searched_by_sign_bits_then_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "EXACT_SCAN", 10)
    monkeypatch.setattr(blocks_module, "PREFILTER", 8)  # so few that the sign bits must do the choosing
    index = VectorIndex(1000, 384, scan_limit=50)
    texts = [f"question number {i}" for i in range(300)]
    index.add_many(EMBED.vectors(texts), np.array([A] * 300, dtype=np.uint64), [key(i + 1) for i in range(300)], texts)
    index.add_many(EMBED.vectors(texts[:40]), np.array([B] * 40, dtype=np.uint64), [key(500 + i) for i in range(40)],
                   texts[:40])  # fmt: skip
    exact = _spied_scans(monkeypatch)
    seen = _spied(index)
    for i in (7, 150, 299):  # the 300-entry block is searched in two stages, without the graph
        found = index.search(vec(f"question number {i}"), A, 0.9)
        assert found[0].key == key(i + 1) and found[0].similarity > 0.99
    assert exact == [] and seen == []  # no full scan, no graph search
    assert index.search(vec("question number 7"), A, 0.999, k=4, max_k=4)[0].key == key(8)  # duplicate check
    assert seen == [index_module.EXPANSION_SEARCH]  # ... by the graph alone
    seen.clear()
    assert index.search(vec("question number 7"), B, 0.9)[0].key == key(507)  # 40 entries: the graph first
    assert exact == [] and seen == [index_module.EXPANSION_SEARCH]
    seen = _spied(index, miss=True)
    assert index.search(vec("question number 7"), B, 0.9)[0].key == key(507)  # ... missed: scanned exactly
    assert exact == [40]
    monkeypatch.setattr(index_module, "SIGN_BITS_FIRST", False)  # the graph first, then the sign bits
    assert index.search(vec("question number 9"), A, 0.9)[0].key == key(10)
    assert exact == [40] and seen == [index_module.EXPANSION_SEARCH] * 2
    got = index._blocks.search(A, vec("question number 42"), 3)  # the best k of the prefiltered, best first
    assert len(got[0]) == 3 and got[0][0] == 43 and list(got[1]) == sorted(got[1], reverse=True)


@pytest.mark.parametrize("ndim", [12, 100, 384, 700])
def test_sign_bits_are_padded_to_a_faiss_code_size_without_changing_distances(ndim: int) -> None:
    size = blocks_module.code_bytes(ndim)
    assert size >= (ndim + 7) // 8 and (size in (16, 32, 64) or (size > 64 and size % 8 == 0))
    rng = np.random.default_rng(ndim)
    vectors = rng.standard_normal((50, ndim)).astype(np.float32)
    bits = blocks_module.sign_bits(vectors, size)
    assert bits.shape == (50, size)
    signs = vectors > 0
    want = (signs[0] != signs).sum(axis=1)  # Hamming distances from the signs themselves
    got = np.unpackbits(bits[0] ^ bits, axis=1).sum(axis=1)
    assert list(got) == list(want)
    assert blocks_module.sign_bits(vectors[0], size).shape == (size,)


def test_a_code_of_the_first_dimensions_is_made_and_searched_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks_module, "CODE_DIMS", 256)  # a benchmark's variant: 32-byte codes
    monkeypatch.setattr(blocks_module, "PREFILTER", 4)
    blocks = blocks_module.ContextBlocks(100, 384, exact_up_to=5)
    texts = [f"question number {i}" for i in range(60)]
    blocks.add(A, np.arange(1, 61, dtype=np.uint64), EMBED.vectors(texts))
    assert blocks.code_bytes == 32 and blocks._blocks[A].bits.shape[1] == 32
    labels, sims = blocks.search(A, vec("question number 33"), 2)
    assert list(labels[:1]) == [34] and sims[0] > 0.99


def test_without_faiss_a_block_over_the_limit_is_scanned_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks_module, "_faiss", lambda: None)  # as where faiss cannot be imported
    blocks = blocks_module.ContextBlocks(100, 384, exact_up_to=5)
    texts = [f"question number {i}" for i in range(20)]
    blocks.add(A, np.arange(1, 21, dtype=np.uint64), EMBED.vectors(texts))
    scanned = _spied_scans(monkeypatch)
    labels, sims = blocks.search(A, vec("question number 12"), 2)
    assert list(labels[:1]) == [13] and sims[0] > 0.99 and len(labels) == 2
    assert scanned == [20]


def test_the_configured_scan_limit_reaches_the_index(tmp_path: Path) -> None:
    from tokenomy.cache.semantic.store import open_store
    from tokenomy.config.cache import SemanticCacheConfig

    assert SemanticCacheConfig().exact_scan_limit == blocks_module.SCAN_LIMIT
    config = SemanticCacheConfig(enabled=True, index_path=str(tmp_path / "s.usearch"), exact_scan_limit=5)
    store = open_store(config, 384)
    assert isinstance(store, VectorIndex) and store._blocks.exact_up_to == 5
    store.close_log()


def test_a_negative_scan_limit_is_refused_with_its_line() -> None:
    from tokenomy.config import ConfigError, parse_config

    text = """cache:
  semantic: {enabled: true, exact_scan_limit: -1}
models:
  - {name: m, deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: x}]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    assert any("line 2" in str(i) and "cache.semantic.exact_scan_limit" in str(i) for i in info.value.issues)


def test_without_block_search_a_large_context_is_searched_wider_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "EXACT_SCAN", 10)
    monkeypatch.setattr(index_module, "BLOCK_SEARCH", False)
    index = VectorIndex(1000, 384)
    for i in range(100):
        index.add(vec(f"question number {i}"), A, key(i + 1), f"question number {i}")
    seen = _spied(index)
    assert index.search(vec("nothing like any stored one"), A, 0.9) == []
    assert seen == [index_module.EXPANSION_SEARCH, index_module.EXPANSION_WIDE]
    assert index._graph.expansion_search == index_module.EXPANSION_SEARCH  # restored
    seen.clear()
    assert index.search(vec("nothing like any stored one"), A, 0.9, k=4, max_k=4) == []  # a duplicate check
    assert seen == [index_module.EXPANSION_SEARCH]


def _block_finds(index: VectorIndex, live: set[int], gone: set[int]) -> None:
    """Every live entry of A is found by a block scan (the graph search made to miss), no gone one."""
    _spied(index, miss=True)
    for i in live:
        found = index.search(vec(f"question number {i}"), A, 0.99)
        assert [c.key for c in found] == [key(i + 1)], i
    for i in gone:
        assert index.search(vec(f"question number {i}"), A, 0.99) == [], i


@pytest.mark.parametrize("limit", [blocks_module.SCAN_LIMIT, 5], ids=["scanned", "sign-bits"])
def test_blocks_follow_eviction_removal_bulk_adds_and_reloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              limit: int) -> None:  # fmt: skip
    """With ``limit`` 5 the sign bits alone pick the one entry compared exactly, so they must follow
    every add, eviction, removal (the last row moved into the gap) and reload too."""
    monkeypatch.setattr(index_module, "EXACT_SCAN", 10)
    monkeypatch.setattr(blocks_module, "PREFILTER", 1)
    index = VectorIndex(50, 384, scan_limit=limit)
    for i in range(40):  # one by one: the block appears at the 11th
        index.add(vec(f"question number {i}"), A, key(i + 1), f"question number {i}")
    texts = [f"question number {i}" for i in range(40, 70)]  # in bulk: evicts 0..19
    index.add_many(EMBED.vectors(texts), np.array([A] * 30, dtype=np.uint64), [key(i + 1) for i in range(40, 70)],
                   texts)  # fmt: skip
    assert index.remove(key(31)) == 1  # question number 30
    assert index._blocks.size(A) == 49
    live, gone = set(range(20, 70)) - {30}, {*range(20), 30}
    _block_finds(index, live, gone)
    path = tmp_path / "semantic.usearch"
    index.save(path)
    again = VectorIndex.load(path, 50, 384, scan_limit=limit)
    assert again._blocks.size(A) == 49
    _block_finds(again, live, gone)
    for i in range(20, 60):  # the context shrinks below the bound: its block goes with its last entry
        again.remove(key(i + 1))
    assert again._blocks.size(A) == 10 and A in again._blocks


def test_a_small_context_the_graph_search_missed_is_compared_exactly() -> None:
    index = VectorIndex(1000, 384)
    for i in range(100):
        index.add(vec(f"question number {i}"), B, key(i + 1), f"question number {i}")
    index.add(vec("what is the capital of France"), A, key(500), "what is the capital of France")
    seen = _spied(index, miss=True)
    found = index.search(vec("what is the capital of France"), A, 0.9)
    assert [c.key for c in found] == [key(500)] and found[0].similarity > 0.99
    assert seen == [index_module.EXPANSION_SEARCH]  # no wider graph search: exact at once


def test_crowded_neighbourhood_widens_the_search() -> None:
    index = VectorIndex(1000, 384)
    text = "what is the capital of France"
    for i in range(200):  # the same question in 200 other conversations
        index.add(vec(text), context_id(f"other {i}"), key(i + 10), text)
    index.add(vec(text), A, key(1), text)
    assert [c.key for c in index.search(vec(text), A, 0.9, k=8)] == [key(1)]


def test_a_crowded_large_context_is_scanned_in_its_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "EXACT_SCAN", 10)
    index = VectorIndex(1000, 384)
    text = "what is the capital of France"
    for i in range(200):  # the same question in 200 other conversations
        index.add(vec(text), context_id(f"other {i}"), key(i + 100), text)
    for i in range(20):  # A is large: it has a block
        index.add(vec(f"question number {i}"), A, key(i + 1), f"question number {i}")
    index.add(vec(text), A, key(50), text)
    seen = _spied(index)
    assert [c.key for c in index.search(vec(text), A, 0.9, k=8)] == [key(50)]
    assert seen == [index_module.EXPANSION_SEARCH]  # one graph search, then the block: no widening


def test_oldest_entries_are_evicted() -> None:
    index = VectorIndex(3, 384)
    for i in range(4):
        index.add(vec(f"question {i}"), A, key(i), f"question {i}")
    assert len(index) == 3
    assert index.search(vec("question 0"), A, 0.99) == []
    assert [c.key for c in index.search(vec("question 3"), A, 0.99)] == [key(3)]


def test_remove_by_key() -> None:
    index = VectorIndex(10, 384)
    index.add(vec("q"), A, key(1), "q")
    assert index.remove(key(1)) == 1
    assert index.search(vec("q"), A, 0.5) == [] and not index.has_context(A)
    assert index.remove(key(1)) == 0


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "semantic.usearch"
    index = VectorIndex(10, 384)
    for i in range(5):
        index.add(vec(f"question number {i}"), A, key(i), f"question number {i}")
    index.save(path)
    assert path.exists() and Path(f"{path}.meta.npz").exists() and not index.dirty

    loaded = VectorIndex.load(path, 10, 384)
    assert len(loaded) == 5 and loaded.has_context(A)
    found = loaded.search(vec("question number 3"), A, 0.99)
    assert [(c.key, c.text) for c in found] == [(key(3), "question number 3")]
    loaded.add(vec("question number 5"), A, key(5), "question number 5")  # labels go on

    smaller = VectorIndex.load(path, 2, 384)  # a smaller capacity keeps the newest entries
    assert len(smaller) == 2
    assert smaller.search(vec("question number 0"), A, 0.99) == []
    assert smaller.search(vec("question number 4"), A, 0.99)[0].key == key(4)


def test_mismatched_or_missing_files_start_empty(tmp_path: Path) -> None:
    path = tmp_path / "semantic.usearch"
    assert len(VectorIndex.load(path, 10, 384)) == 0
    index = VectorIndex(10, 384)
    index.add(vec("q"), A, key(1), "q")
    index.save(path)
    other = VectorIndex(10, 384)
    other.add(vec("q"), A, key(1), "q")
    other.add(vec("r"), A, key(2), "r")
    other.save(tmp_path / "other.usearch")
    Path(f"{tmp_path / 'other.usearch'}.meta.npz").replace(f"{path}.meta.npz")
    assert len(VectorIndex.load(path, 10, 384)) == 0
    Path(f"{path}.meta.npz").write_bytes(b"garbage")
    assert len(VectorIndex.load(path, 10, 384)) == 0
    assert len(VectorIndex.load(path, 10, 8)) == 0


def test_bulk_add_evicts_like_single_adds() -> None:
    index = VectorIndex(4, 384)
    texts = [f"bulk question {i}" for i in range(6)]
    contexts = np.array([A] * 6, dtype=np.uint64)
    index.add_many(EMBED.vectors(texts), contexts, [key(i) for i in range(6)], texts)
    assert len(index) == 4
    assert index.search(vec("bulk question 1"), A, 0.99) == []
    assert index.search(vec("bulk question 5"), A, 0.99)[0].key == key(5)
    index.add(vec("single"), A, key(9), "single")  # evicts bulk question 2
    assert len(index) == 4 and index.search(vec("bulk question 2"), A, 0.99) == []


def test_entries_added_since_the_last_save_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "s.usearch"
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ctx = context_id("c")
    index = VectorIndex.load(path, 100, 384)
    index.open_log(Path(f"{path}.log"))
    index.add(vectors[0], ctx, "a" * 40, "saved")
    index.save(path)
    assert Path(f"{path}.log").stat().st_size == 0  # a save empties the log
    index.add(vectors[1], ctx, "b" * 40, "after the save")
    index.add(vectors[2], ctx, "c" * 40, "removed after the save")
    index.remove("c" * 40)
    with open(f"{path}.log", "ab") as f:  # a torn record, as a crash mid-write leaves
        f.write(b"A\x05\x00")
    del index  # a crash: no save, no close
    again = VectorIndex.load(path, 100, 384)
    again.open_log(Path(f"{path}.log"))
    texts = {c.text for v in vectors[:3] for c in again.search(v, ctx, 0.99)}
    assert texts == {"saved", "after the save"} and len(again) == 2
    again.add(vectors[3], ctx, "d" * 40, "after the restart")  # labels go on from the replayed ones
    assert {c.text for c in again.search(vectors[3], ctx, 0.99)} == {"after the restart"}
    again.close_log()
    third = VectorIndex.load(path, 100, 384)
    third.open_log(Path(f"{path}.log"))  # the torn bytes were dropped: the later add replays too
    assert len(third) == 3
    third.close_log()
