"""Running gateway-run batches: every request through the normal pipeline, at background priority.

One task works through the active batches oldest first. Before each request it waits while live
traffic is in flight (``yield_to_live``), so batch work fills idle capacity rather than taking it;
at most ``concurrency`` batch requests are in flight at once, and the route stage still keeps each
deployment within its RPM/TPM. Items are marked ``running`` (committed) before they are sent and
their results committed as they finish, so a restart resumes where the batch stopped: finished
items are never sent again, and only those in flight at the kill run a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import orjson

from tokenomy.batches import shapes
from tokenomy.batches.execute import execute
from tokenomy.batches.provider_run import ProviderRun
from tokenomy.batches.store import BatchStore, Item
from tokenomy.config.batches import BatchesConfig
from tokenomy.pipeline.chain import Handler

log = logging.getLogger("tokenomy.batches")

T = TypeVar("T")
_CHUNK = 64
_RESULTS_PAGE = 1000  # items claimed (marked running) per store write
_MAX_YIELD_S = 1.0  # longest batch work waits for live traffic before taking one slot anyway
_COOL_S = 1.0  # after live traffic was seen, batch work runs one request at a time this long


_IDLE_POLL_S = 2.0  # batches created through another worker process are found by polling


class BatchRunner:
    """Executes batches from the store through ``chain``."""

    def __init__(self, store: BatchStore, chain: Handler, config: BatchesConfig) -> None:
        self.store = store
        self.chain = chain
        self.config = config
        self.live_load: Callable[[], int] = lambda: 0  # live requests in flight (set by the HTTP edge)
        self._slots = asyncio.Semaphore(config.concurrency)
        self._wake = asyncio.Event()
        self._live: dict[str, dict[str, Any]] = {}  # batch id -> the runner's copy of its object
        self._task: asyncio.Task[None] | None = None
        self._provider_tasks: dict[str, asyncio.Task[Any]] = {}
        self._sending = 0  # gateway-run batch requests in flight
        self._live_seen = 0.0  # monotonic time live traffic was last seen
        self._stopping = False
        # the provider batch API for a batch's model, when it has one (set by the service)
        self.provider_plan: Callable[[str], ProviderRun | None] = lambda model: None

    async def start(self) -> None:
        """Resume batches left active by the last run, and start working."""
        for _tenant, _key, state in await asyncio.to_thread(self.store.active_batches):
            requeued = await asyncio.to_thread(self.store.requeue_running, state["id"])
            if requeued:
                log.info("batch %s: %d requests in flight at the last stop run again", state["id"], requeued)
        self._task = asyncio.create_task(self._loop(), name="batch-runner")

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop taking work; in-flight requests get ``grace_s`` to finish (the rest resume next start)."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._provider_tasks.values()):  # they resume by polling the same provider batch
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """A new batch is waiting."""
        self._wake.set()

    def live(self, batch_id: str) -> dict[str, Any] | None:
        """The runner's current copy of a running batch (fresher counts than the store's)."""
        return self._live.get(batch_id)

    async def cancel(self, state: dict[str, Any]) -> dict[str, Any]:
        """Mark a batch ``cancelling``; the runner finishes it as ``cancelled``."""
        target = self._live.get(state["id"], state)
        if target["status"] != "cancelling":
            target.update(status="cancelling", cancelling_at=int(time.time()))
            await asyncio.to_thread(self.store.save_batch, dict(target))
        self._wake.set()
        return dict(target)

    # -- the work loop -----------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            active = await asyncio.to_thread(self.store.active_batches)
            for tenant, key_name, state in active:
                if self._stopping:
                    return
                if state["id"] in self._provider_tasks:
                    continue  # being polled by its own task
                provider = await self._guarded(state, self._provider_run(state))
                if provider is not None:  # may take hours: runs beside the gateway-run batches
                    task = asyncio.create_task(
                        self._guarded(state, self._run_provider(provider, tenant, key_name, state))
                    )
                    self._provider_tasks[state["id"]] = task
                    task.add_done_callback(partial(self._forget, state["id"]))
                    continue
                await self._guarded(state, self._run(tenant, key_name, state))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5 if active else _IDLE_POLL_S)

    async def _register(self, tenant: str, state: dict[str, Any]) -> None:
        """Make ``state`` the live copy, with any cancel that reached the store since it was read."""
        self._live[state["id"]] = state
        stored = await asyncio.to_thread(self.store.get_batch, tenant, state["id"])
        if stored is not None and stored["status"] == "cancelling":
            state.update(status="cancelling", cancelling_at=stored["cancelling_at"])
        await self._recount(state)

    async def _recount(self, state: dict[str, Any]) -> None:
        """Counts from the items themselves: exact after a restart, whatever order snapshots were saved in."""
        counts = await asyncio.to_thread(self.store.counts, state["id"])
        state["request_counts"].update(completed=counts.get("done", 0), failed=counts.get("failed", 0))

    def _forget(self, batch_id: str, _task: object) -> None:
        self._provider_tasks.pop(batch_id, None)

    async def _guarded(self, state: dict[str, Any], work: Awaitable[T]) -> T | None:
        """Run one batch's work; a broken batch is marked failed and must not stop the others."""
        try:
            return await work
        except Exception:
            log.exception("batch %s failed to run", state["id"])
            state.update(status="failed", failed_at=int(time.time()))
            await asyncio.to_thread(self.store.save_batch, dict(state))
            return None
        finally:
            if state["status"] not in ("validating", "in_progress", "cancelling", "finalizing") or self._stopping:
                self._live.pop(state["id"], None)

    async def _run_provider(
        self, provider: ProviderRun, tenant: str, key_name: str | None, state: dict[str, Any]
    ) -> None:
        await self._register(tenant, state)
        if state["status"] == "validating":
            state.update(status="in_progress", in_progress_at=int(time.time()))
            await asyncio.to_thread(self.store.save_batch, dict(state))
        final = await provider.run(tenant, key_name, state, lambda: self._stopping)
        if final != "stopping":
            await self._finish(tenant, state, {"completed": "in_progress", "cancelled": "cancelling"}.get(final, final))

    async def _run(self, tenant: str, key_name: str | None, state: dict[str, Any]) -> None:
        batch_id = state["id"]
        await self._register(tenant, state)
        if state["status"] == "validating":
            state.update(status="in_progress", in_progress_at=int(time.time()))
            await asyncio.to_thread(self.store.save_batch, dict(state))
        pending: set[asyncio.Task[None]] = set()
        while state["status"] == "in_progress" and not self._stopping:
            if time.time() > state["expires_at"]:
                state.update(status="expired")
                break
            items = await asyncio.to_thread(self.store.items, batch_id, "pending", _CHUNK)
            if not items:
                break
            await asyncio.to_thread(self.store.mark_running, batch_id, [item.line for item in items])
            for item in items:
                await self._take_slot()
                if state["status"] != "in_progress" or self._stopping:
                    self._slots.release()  # the claimed rest stays ``running``: requeued on resume
                    break
                task = asyncio.create_task(self._one(tenant, key_name, state, item))
                pending.add(task)
                task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._stopping:
            return
        await asyncio.to_thread(self.store.requeue_running, batch_id)  # claimed but never sent (cancel)
        await self._finish(tenant, state)

    async def _provider_run(self, state: dict[str, Any]) -> ProviderRun | None:
        """The provider batch API run of this batch, when all its requests are for one listed model."""
        planned = await asyncio.to_thread(self.store.remote, state["id"])
        if planned is None and state["status"] == "validating":
            items = await asyncio.to_thread(self.store.items, state["id"], "pending")
            models = {str(item.request.get("model")) for item in items if item.request is not None}
            if len(models) == 1 and self.provider_plan(next(iter(models))) is not None:
                planned = (next(iter(models)), None)
                await asyncio.to_thread(self.store.set_remote, state["id"], planned[0], None)
        return self.provider_plan(planned[0]) if planned is not None else None

    async def _take_slot(self) -> None:
        """A concurrency slot, once live traffic has left room (or waited long enough)."""
        limit = self.config.yield_to_live
        waited = 0.0
        while limit and waited < _MAX_YIELD_S:
            now = time.monotonic()
            if self.live_load() >= limit:
                self._live_seen = now
            elif now - self._live_seen > _COOL_S or self._sending == 0:
                break  # within a second of live traffic, only one batch request at a time
            await asyncio.sleep(0.005)
            waited += 0.005
        await self._slots.acquire()

    async def _one(self, tenant: str, key_name: str | None, state: dict[str, Any], item: Item) -> None:
        # The slot is held until the result is committed: at most ``concurrency`` requests are ever
        # sent but not stored, which bounds what a crash can make run twice.
        self._sending += 1
        try:
            ok, result = await self._execute(tenant, key_name, state, item)
            counts = state["request_counts"]
            counts["completed" if ok else "failed"] += 1
            snapshot = orjson.loads(orjson.dumps(state))
            await asyncio.to_thread(self.store.finish_item, state["id"], item.line, ok, result, snapshot)
        finally:
            self._sending -= 1
            self._slots.release()

    async def _execute(
        self, tenant: str, key_name: str | None, state: dict[str, Any], item: Item
    ) -> tuple[bool, dict[str, Any]]:
        """Send one item through the pipeline; ``(ok, result)`` for the output or error file."""
        return await execute(self.chain, state["endpoint"], state["id"], item, tenant, key_name)

    async def _finish(self, tenant: str, state: dict[str, Any], status: str | None = None) -> None:
        """Write the output and error files and settle the final status."""
        now = int(time.time())
        status = status or state["status"]
        if status == "finalizing":  # a restart during finalization: what it was finishing as
            expired = time.time() > state["expires_at"]
            status = "cancelling" if state.get("cancelling_at") else "expired" if expired else "in_progress"
        final = {"in_progress": "completed", "cancelling": "cancelled", "expired": "expired", "failed": "failed"}.get(
            status
        )
        if final is None:
            return
        await self._recount(state)
        state.update(status="finalizing", finalizing_at=now)
        await asyncio.to_thread(self.store.save_batch, dict(state))
        output, errors = await asyncio.to_thread(self._write_results, tenant, state, final)
        state.update(output_file_id=output, error_file_id=errors, status=final)
        state[f"{final}_at"] = int(time.time())
        await asyncio.to_thread(self.store.save_batch, dict(state))

    def _write_results(self, tenant: str, state: dict[str, Any], final: str) -> tuple[str | None, str | None]:
        """Stream the results to the output and error files, a page of items at a time."""
        paths = self.store.scratch(), self.store.scratch()
        written = [0, 0]
        try:
            with paths[0].open("wb") as ok, paths[1].open("wb") as bad:
                last = 0
                while page := self.store.items(state["id"], limit=_RESULTS_PAGE, after=last):
                    for item in page:
                        line = shapes.output_line(state["id"], item.line, item.custom_id, _result(item, final))
                        which = 0 if item.status == "done" else 1
                        (ok, bad)[which].write(orjson.dumps(line) + b"\n")
                        written[which] += 1
                    last = page[-1].line
            short = state["id"].removeprefix("batch_")
            ids: list[str | None] = []
            for path, count, kind in zip(paths, written, ("output", "error"), strict=True):
                name = f"batch_{short}_{kind}.jsonl"
                ids.append(self.store.add_file(tenant, "batch_output", name, path).id if count else None)
            return ids[0], ids[1]
        finally:
            for path in paths:
                path.unlink(missing_ok=True)  # already gone when moved into the store


def _result(item: Item, final: str) -> dict[str, Any]:
    """The item's result; one that never ran says why (the batch was cancelled, expired or failed first)."""
    if item.result is not None:
        return item.result
    code = {"cancelled": "batch_cancelled", "failed": "batch_failed"}.get(final, "batch_expired")
    return {"response": None, "error": {"code": code, "message": f"The request was not run: the batch {final} first."}}
