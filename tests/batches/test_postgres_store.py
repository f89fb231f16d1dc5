"""The batch store's contract on SQLite and on a real PostgreSQL: tenancy, order, cancels, leases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.postgres import PostgresServer

from tokenomy.batches.shapes import new_batch
from tokenomy.batches.store import BatchStore, Item, SqlBatchStore
from tokenomy.batches.store_postgres import PostgresBatchStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlBatchStore]:
    if request.param == "sqlite":
        opened: SqlBatchStore = BatchStore(tmp_path / "state", tmp_path / "files")
        yield opened
        opened.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as dsn:
        opened = PostgresBatchStore(dsn, tmp_path / "files")
        yield opened
        opened.close()


def a_batch(store: SqlBatchStore, tenant: str, lines: int = 3) -> dict[str, object]:
    state = new_batch("file-x", "/v1/embeddings", "24h", None, 3600)
    items = [Item(n, f"c{n}", "pending", {"model": "m", "input": "x"}, None) for n in range(1, lines + 1)]
    store.add_batch(tenant, None, state, items)
    return state


def test_files_belong_to_their_tenant_and_list_newest_first(store: SqlBatchStore, tmp_path: Path) -> None:
    first = store.add_file("a", "batch", "one.jsonl", b"{}\n")
    second = store.add_file("a", "batch", "two.jsonl", b"{}\n{}\n")
    other = store.add_file("b", "batch", "three.jsonl", b"{}\n")
    assert store.path_of(first.id).parent == tmp_path / "files"  # the configured folder
    assert store.get_file("b", first.id) is None
    assert store.get_file("a", second.id) == second and second.bytes == 6
    assert [f.id for f in store.list_files("a", None, 10, None)] == [second.id, first.id]
    assert [f.id for f in store.list_files("a", "batch", 10, second.id)] == [first.id]
    assert not store.delete_file("a", other.id)
    assert store.delete_file("b", other.id) and not store.path_of(other.id).exists()


def test_batches_items_and_a_cancel_made_elsewhere(store: SqlBatchStore) -> None:
    one, two = a_batch(store, "a"), a_batch(store, "a")
    assert [b["id"] for b in store.list_batches("a", 10, None)] == [two["id"], one["id"]]
    assert store.get_batch("b", str(one["id"])) is None
    store.mark_running(str(one["id"]), [1, 2])
    store.finish_item(str(one["id"]), 1, True, {"response": {"status_code": 200}}, {**one, "status": "in_progress"})
    assert store.counts(str(one["id"])) == {"done": 1, "running": 1, "pending": 1}
    assert store.requeue_running(str(one["id"])) == 1
    assert [i.line for i in store.items(str(one["id"]), "pending")] == [2, 3]
    assert store.cancel_requested(str(one["id"])) is None
    store.request_cancel(str(one["id"]), 1234)
    # a progress write after the cancel (as the running gateway makes) does not undo it
    store.finish_item(str(one["id"]), 2, True, {"response": {"status_code": 200}}, {**one, "status": "in_progress"})
    seen = store.get_batch("a", str(one["id"]))
    assert seen is not None and (seen["status"], seen["cancelling_at"]) == ("cancelling", 1234)
    assert store.cancel_requested(str(one["id"])) == 1234
    assert [b["id"] for _, _, b in store.active_batches()] == [one["id"], two["id"]]
    store.set_remote(str(two["id"]), "m", None)
    store.set_remote(str(two["id"]), "m", "remote-1")
    assert store.remote(str(two["id"])) == ("m", "remote-1")


def test_a_lease_excludes_others_until_released_or_expired(store: SqlBatchStore) -> None:
    assert store.take_lease("batch_1", "gw-a", 30.0)
    assert store.take_lease("batch_1", "gw-a", 30.0)  # renewal
    assert not store.take_lease("batch_1", "gw-b", 30.0)
    assert store.take_lease("batch_2", "gw-b", 30.0)  # leases are per batch
    store.release_lease("batch_1", "gw-b")  # not the holder: nothing happens
    assert not store.take_lease("batch_1", "gw-b", 30.0)
    store.release_lease("batch_1", "gw-a")
    assert store.take_lease("batch_1", "gw-b", 0.2)
    assert not store.take_lease("batch_1", "gw-a", 30.0)
    time.sleep(0.3)  # gw-b did not renew: its lease has expired
    assert store.take_lease("batch_1", "gw-a", 30.0)
