"""The memory the workers of ``serve --workers`` share: counters, buckets, and what uses them.

Two mappings of one file stand for two workers; the atomicity test runs real processes.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tokenomy.cache.entry import CacheEntry
from tokenomy.cache.service import CacheService
from tokenomy.cache.stores.sqlite import SqliteCacheStore
from tokenomy.keys.limits import Bucket, MemoryRateLimiter
from tokenomy.keys.record import KeyRecord
from tokenomy.keys.store_sqlite import SqliteKeyStore
from tokenomy.state import shared_memory
from tokenomy.state.shared_memory import CACHE_GENERATION, KEYS_GENERATION, SharedState


@pytest.fixture
def pair(tmp_path: Path) -> tuple[SharedState, SharedState]:
    """Two mappings of one new file (two workers)."""
    first = SharedState.create(tmp_path / "state")
    return first, SharedState(tmp_path / "state")


def test_a_counter_bumped_through_one_mapping_is_read_through_the_other(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    assert b.generation(CACHE_GENERATION) == 0
    assert a.bump(CACHE_GENERATION) == 1 and b.bump(CACHE_GENERATION) == 2
    assert a.generation(CACHE_GENERATION) == 2 and b.generation(KEYS_GENERATION) == 0


def test_not_a_shared_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").write_bytes(b"\0" * shared_memory.SIZE)
    with pytest.raises(ValueError, match="not a Tokenomy shared-state file"):
        SharedState(tmp_path / "other")


async def test_buckets_follow_the_in_process_arithmetic(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    rpm, tpm = Bucket("dep:x:rpm", 3, 1.0), Bucket("dep:x:tpm", 100, 40.0)
    assert a.take([rpm, tpm], now=10.0) is None and b.take([rpm, tpm], now=10.0) is None
    refusal = a.take([rpm, tpm], now=10.0)  # 20 tokens left: the TPM bucket refuses, nothing is taken
    assert refusal is not None and refusal.index == 1 and refusal.retry_after_s == pytest.approx(12.0)
    b.charge(Bucket("dep:x:tpm", 100, -30.0), now=10.0)  # a settlement gives 30 back
    assert a.take([rpm, tpm], now=10.0) is None  # the third request of the minute
    refusal = b.take([rpm], now=10.0)
    assert refusal is not None and refusal.retry_after_s == pytest.approx(20.0)  # one request refills in 20 s
    assert a.take([rpm], now=30.0) is None
    # the same steps on the in-process limiter give the same answers
    memory = MemoryRateLimiter()
    assert await memory.take([rpm, tpm]) is None and await memory.take([rpm, tpm]) is None
    assert (await memory.take([rpm, tpm])) is not None


def test_a_full_table_lets_requests_through_and_idle_slots_are_reused(
    pair: tuple[SharedState, SharedState], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_memory, "SLOTS", 4)
    monkeypatch.setattr(shared_memory, "_PROBES", 4)
    a, _ = pair
    for i in range(4):
        assert a.take([Bucket(f"k{i}", 1, 1.0)], now=0.0) is None
    late = Bucket("late", 1, 1.0)
    assert a.take([late], now=1.0) is None and a.take([late], now=1.0) is None  # no slot: not enforced
    assert a.take([late], now=500.0) is None  # the others are idle (full again): one of their slots is taken
    assert a.take([late], now=500.0) is not None
    assert a.take([Bucket("k0", 1, 1.0)], now=500.0) is None  # a reused bucket starts full, as an idle one is


_HAMMER = """
import sys
from pathlib import Path
from tokenomy.keys.limits import Bucket
from tokenomy.state.shared_memory import SharedState
state = SharedState(Path(sys.argv[1]))
sys.stdin.readline()  # start together
taken = sum(state.take([Bucket("dep:y:rpm", 500, 1.0), Bucket("dep:y:tpm", 10**6, 7.0)], now=5.0) is None
            for _ in range(300))
print(taken)
"""


def test_processes_taking_at_once_never_take_more_than_the_bucket_holds(tmp_path: Path) -> None:
    SharedState.create(tmp_path / "state").close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(tmp_path / "state")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate("go\n", timeout=60)[0] for p in procs]
    assert sum(int(out) for out in outs) == 500  # 1,200 attempts on a 500-request bucket (the clock held still)


def test_a_lock_holder_killed_with_sigkill_blocks_no_one(tmp_path: Path) -> None:
    state = SharedState.create(tmp_path / "state")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from tokenomy.state.shared_memory import SharedState\n"
            "s = SharedState(Path(sys.argv[1]))\nwith s.locked():\n    print('locked', flush=True); time.sleep(60)",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    done = threading.Event()
    bumper = threading.Thread(target=lambda: (state.bump(CACHE_GENERATION), done.set()), daemon=True)
    bumper.start()
    assert not done.wait(0.3)  # the holder has it
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert done.wait(10), "the lock of a killed process was not released"
    assert state.generation(CACHE_GENERATION) == 1


def entry(body: bytes) -> CacheEntry:
    now = time.time()
    return CacheEntry(body, now, now + 300, "m", "chat", "t/a/")


async def test_an_invalidation_on_one_worker_empties_every_workers_level_one(
    pair: tuple[SharedState, SharedState], tmp_path: Path
) -> None:
    stores = [SqliteCacheStore(tmp_path / "cache.db"), SqliteCacheStore(tmp_path / "cache.db")]
    a, b = (CacheService(1 << 20, store) for store in stores)
    a.share_invalidations(pair[0])
    b.share_invalidations(pair[1])
    a.put("k", entry(b"old"))
    await a.drain()
    assert (await b.get("k"))[1] == "store" and (await b.get("k"))[1] == "memory"  # now in b's level 1 too
    assert await a.invalidate(namespace=None, model=None, task=None) == 1
    assert await b.get("k") == (None, "miss")  # b's level 1 was emptied before it was read
    b.put("k", entry(b"new"))  # answers stored after the invalidation stay
    found, tier = await b.get("k")
    assert tier == "memory" and found is not None and found.body == b"new"
    for service in (a, b):
        await service.close()


class _SlowReads(SqliteCacheStore):
    """A SQLite store whose reads wait until ``release`` is set (an invalidation lands meanwhile)."""

    release: asyncio.Event

    async def get(self, key: str) -> bytes | None:
        found = await super().get(key)
        await self.release.wait()
        return found


async def test_an_entry_read_from_level_two_before_an_invalidation_is_not_kept_in_level_one(
    pair: tuple[SharedState, SharedState], tmp_path: Path
) -> None:
    writer = CacheService(1 << 20, SqliteCacheStore(tmp_path / "cache.db"))
    writer.share_invalidations(pair[0])
    writer.put("k", entry(b"old"))
    await writer.drain()
    slow = _SlowReads(tmp_path / "cache.db")
    slow.release = asyncio.Event()
    reader = CacheService(1 << 20, slow)
    reader.share_invalidations(pair[1])
    read = asyncio.create_task(reader.get("k"))
    await asyncio.sleep(0.05)  # the read has the old entry and waits
    await writer.invalidate(namespace=None, model=None, task=None)
    slow.release.set()
    assert (await read)[1] == "store"  # answered (it was read before the invalidation) ...
    assert await reader.get("k") == (None, "miss")  # ... but not kept
    for service in (writer, reader):
        await service.close()


async def test_a_key_created_or_revoked_on_one_worker_applies_on_the_other_at_once(
    pair: tuple[SharedState, SharedState], tmp_path: Path
) -> None:
    a, b = (SqliteKeyStore(tmp_path / "keys.db", refresh_s=3600, shared=state) for state in pair)
    await a.open()
    await b.open()
    record = KeyRecord(id="key_1", name="ci", created=time.time())
    await a.add(record, "d" * 64)
    found = await b.lookup("d" * 64)  # no refresh interval passed: the counter told b to reload
    assert found is not None and found.name == "ci"
    await a.revoke("key_1", time.time())
    assert await b.lookup("d" * 64) is None
    for store in (a, b):
        await store.close()
