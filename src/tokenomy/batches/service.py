"""The Batch API's operations: store uploads, create, read, list and cancel batches (per tenant)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenomy.batches import shapes
from tokenomy.batches.jsonl import ENDPOINTS, check_input
from tokenomy.batches.provider_run import ProviderRun
from tokenomy.batches.remote import remote_for
from tokenomy.batches.runner import BatchRunner
from tokenomy.batches.store import BatchStore, FileRecord
from tokenomy.config.batches import BatchesConfig
from tokenomy.config.models import LogicalModel
from tokenomy.config.observability import data_dir
from tokenomy.errors import GatewayError, invalid_request, not_found
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext
from tokenomy.worker_slot import runs_singletons

WINDOWS = ("24h",)


class BatchService:
    """Files and batches of every tenant, and the runner that executes batches."""

    def __init__(self, config: BatchesConfig) -> None:
        self.config = config
        self.dir = Path(config.dir).expanduser() if config.dir else data_dir() / "batches"
        self.store: BatchStore | None = None
        self.runner: BatchRunner | None = None

    async def start(
        self,
        chain: Handler,
        live_load: Callable[[], int],
        resolve: Callable[[str], LogicalModel] | None = None,
        record: Callable[[CallContext], None] | None = None,
    ) -> None:
        """Open the store and resume every batch that was running."""
        self.store = await asyncio.to_thread(BatchStore, self.dir)
        self.runner = BatchRunner(self.store, chain, self.config)
        self.runner.live_load = live_load
        if resolve is not None and record is not None:
            self.runner.provider_plan = lambda name: self._provider_plan(name, resolve, record)
        if runs_singletons():  # with several workers, one runs batches; the others only store them
            await self.runner.start()

    def _provider_plan(
        self, name: str, resolve: Callable[[str], LogicalModel], record: Callable[[CallContext], None]
    ) -> ProviderRun | None:
        """A provider batch run for model ``name`` when it is listed in ``provider_models``."""
        if name not in self.config.provider_models or self.store is None:
            return None
        try:
            model = resolve(name)
        except GatewayError:
            return None
        deployment = model.deployments[0]
        remote = remote_for(deployment)
        if remote is None:
            return None
        return ProviderRun(
            self.store, remote, model, deployment, record, self.config.poll_interval_s, self.config.provider_discount
        )

    async def close(self) -> None:
        """Stop the runner (in-flight requests get a moment to finish), then close the store."""
        if self.runner is not None:
            await self.runner.close()
        if self.store is not None:
            self.store.close()

    def _store(self) -> BatchStore:
        if self.store is None:
            raise GatewayError(503, "The batch store is starting; retry shortly.", "server_error")
        return self.store

    # -- files -------------------------------------------------------------------------------------
    async def add_file(self, tenant: str, purpose: str, filename: str, path: Path) -> dict[str, Any]:
        """Store an uploaded (already size- and line-checked) file."""
        record = await asyncio.to_thread(self._store().add_file, tenant, purpose, filename, path)
        return shapes.file_object(record)

    async def file(self, tenant: str, file_id: str) -> FileRecord:
        """The tenant's file, or 404."""
        record = await asyncio.to_thread(self._store().get_file, tenant, file_id)
        if record is None:
            raise not_found(f"No such File object: {file_id}", param="file_id")
        return record

    async def content(self, tenant: str, file_id: str) -> bytes:
        """The bytes of the tenant's file."""
        record = await self.file(tenant, file_id)
        return await asyncio.to_thread(self._store().path_of(record.id).read_bytes)

    async def delete_file(self, tenant: str, file_id: str) -> dict[str, Any]:
        """Delete the tenant's file."""
        if not await asyncio.to_thread(self._store().delete_file, tenant, file_id):
            raise not_found(f"No such File object: {file_id}", param="file_id")
        return {"id": file_id, "object": "file", "deleted": True}

    async def list_files(self, tenant: str, purpose: str | None, limit: int, after: str | None) -> dict[str, Any]:
        """A page of the tenant's files."""
        found = await asyncio.to_thread(self._store().list_files, tenant, purpose, limit + 1, after)
        return shapes.page([shapes.file_object(r) for r in found[:limit]], len(found) > limit)

    # -- batches -----------------------------------------------------------------------------------
    async def create(self, tenant: str, key_name: str | None, request: dict[str, Any]) -> dict[str, Any]:
        """Check the input file and store a new batch (``validating``, or ``failed`` with ``errors``)."""
        endpoint, window = request.get("endpoint"), request.get("completion_window")
        if endpoint not in ENDPOINTS:
            raise invalid_request(f"endpoint must be one of {', '.join(ENDPOINTS)}.", param="endpoint")
        if window not in WINDOWS:
            raise invalid_request("completion_window must be '24h'.", param="completion_window")
        metadata = request.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items()
            )
        ):
            raise invalid_request("metadata must map at most 16 keys to strings.", param="metadata")
        file_id = request.get("input_file_id")
        if not isinstance(file_id, str):
            raise invalid_request("Missing required parameter: 'input_file_id'.", param="input_file_id")
        record = await self.file(tenant, file_id)
        if record.purpose != "batch":
            raise invalid_request(f"File {file_id} has purpose {record.purpose!r}, not 'batch'.", param="input_file_id")
        store = self._store()
        checked = await asyncio.to_thread(check_input, store.path_of(file_id), endpoint, self.config.max_lines)
        state = shapes.new_batch(file_id, endpoint, window, metadata, self.config.expiry_s)
        if checked.errors:
            state.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": checked.errors})
            checked.items = []
        else:
            failed = sum(1 for item in checked.items if item.status == "failed")
            state["request_counts"] = {"total": len(checked.items), "completed": 0, "failed": failed}
        await asyncio.to_thread(store.add_batch, tenant, key_name, state, checked.items)
        if not checked.errors and self.runner is not None:
            self.runner.wake()
        return state

    async def get(self, tenant: str, batch_id: str) -> dict[str, Any]:
        """The tenant's batch (the runner's live copy while it runs)."""
        state = await asyncio.to_thread(self._store().get_batch, tenant, batch_id)
        if state is None:
            raise not_found(f"No such Batch object: {batch_id}", param="batch_id")
        live = self.runner.live(batch_id) if self.runner is not None else None
        return dict(live) if live is not None else state

    async def list(self, tenant: str, limit: int, after: str | None) -> dict[str, Any]:
        """A page of the tenant's batches, newest first."""
        found = await asyncio.to_thread(self._store().list_batches, tenant, limit + 1, after)
        data = [self.runner.live(b["id"]) or b if self.runner is not None else b for b in found[:limit]]
        return shapes.page(data, len(found) > limit)

    async def cancel(self, tenant: str, batch_id: str) -> dict[str, Any]:
        """Ask a batch to stop: finished results are kept, the rest is marked cancelled."""
        state = await self.get(tenant, batch_id)
        if state["status"] not in ("validating", "in_progress", "finalizing", "cancelling"):
            raise GatewayError(
                409, f"Cannot cancel a batch with status {state['status']!r}.", "invalid_request_error",
                code="batch_not_cancellable",
            )  # fmt: skip
        assert self.runner is not None
        return await self.runner.cancel(state)
