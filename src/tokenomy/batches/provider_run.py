"""Running a batch on a provider's batch API: submit once, poll, map results back, record discounts.

The provider batch id is stored before anything else happens after submission, so a restart
polls the same provider batch rather than sending the requests again. Each result is recorded
in the ledger like a live request, priced at the list price less the provider's batch discount,
which is attributed to the ``batching`` lever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from tokenomy.batches.remote import TERMINAL, RemoteBatches, RemoteError
from tokenomy.batches.store import SqlBatchStore
from tokenomy.config.models import Deployment, LogicalModel
from tokenomy.pipeline.context import CallContext, Endpoint, Usage
from tokenomy.server.context import task_tag

log = logging.getLogger("tokenomy.batches")

_ENDPOINTS = {"/v1/chat/completions": Endpoint.CHAT, "/v1/completions": Endpoint.COMPLETIONS,
              "/v1/embeddings": Endpoint.EMBEDDINGS}  # fmt: skip


class ProviderRun:
    """One provider batch, from submission to results."""

    def __init__(
        self,
        store: SqlBatchStore,
        remote: RemoteBatches,
        model: LogicalModel,
        deployment: Deployment,
        record: Callable[[CallContext], None],
        poll_interval_s: float,
        discount: float,
    ) -> None:
        self.store, self.remote, self.model, self.deployment = store, remote, model, deployment
        self.record, self.poll_interval_s, self.discount = record, poll_interval_s, discount

    async def run(self, tenant: str, key_name: str | None, state: dict[str, Any], stopping: Callable[[], bool]) -> str:
        """Drive the batch to a terminal provider status; the status the batch should end with."""
        batch_id = state["id"]
        planned = await asyncio.to_thread(self.store.remote, batch_id)
        remote_id = planned[1] if planned else None
        if remote_id is None:
            items = await asyncio.to_thread(self.store.items, batch_id, "pending")
            remote_id = await self.remote.submit(items, state["endpoint"])
            await asyncio.to_thread(self.store.set_remote, batch_id, self.model.name, remote_id)
            await asyncio.to_thread(self.store.mark_running, batch_id, [item.line for item in items])
        cancel_sent = False
        while not stopping():
            try:
                if state["status"] != "cancelling" and (
                    at := await asyncio.to_thread(self.store.cancel_requested, batch_id)
                ):
                    state.update(status="cancelling", cancelling_at=at)  # cancelled through another gateway
                if state["status"] == "cancelling" and not cancel_sent:
                    await self.remote.cancel(remote_id)
                    cancel_sent = True
                status = await self.remote.poll(remote_id)
            except (TimeoutError, RemoteError, OSError) as exc:
                log.warning("batch %s: provider batch %s: %s (retrying)", batch_id, remote_id, exc)
                await asyncio.sleep(self.poll_interval_s)
                continue
            if status.status in TERMINAL:
                await self._collect(tenant, key_name, state, remote_id)
                if status.status == "failed":
                    state["errors"] = status.errors
                return status.status
            await asyncio.sleep(self.poll_interval_s)
        return "stopping"

    async def _collect(self, tenant: str, key_name: str | None, state: dict[str, Any], remote_id: str) -> None:
        results = await self.remote.results(remote_id)
        every = await asyncio.to_thread(self.store.items, state["id"])
        items = [item for item in every if item.status in ("running", "pending")]  # pending: requeued at a restart
        counts = state["request_counts"]
        for item in items:
            result = results.get(item.custom_id or "")
            if result is None:
                continue
            response = result.get("response") or {}
            ok = response.get("status_code") == 200
            counts["completed" if ok else "failed"] += 1
            self._record(tenant, key_name, state, item.request or {}, item.line, result)
            snapshot = orjson.loads(orjson.dumps(state))
            await asyncio.to_thread(self.store.finish_item, state["id"], item.line, ok, result, snapshot)

    def _record(
        self, tenant: str, key_name: str | None, state: dict[str, Any], body: dict[str, Any], line: int,
        result: dict[str, Any],
    ) -> None:  # fmt: skip
        response = result.get("response") or {}
        body_out = response.get("body")
        reply: dict[str, Any] = body_out if isinstance(body_out, dict) else {}
        ctx = CallContext(
            request_id=f"batch_req_{state['id'].removeprefix('batch_')}_{line}",
            endpoint=_ENDPOINTS[state["endpoint"]],
            body=body,
            model=self.model.name,
            tenant=tenant,
            api_key_name=key_name,
            task=task_tag({}, body),
        )
        ctx.logical_model, ctx.deployment, ctx.served_model = self.model, self.deployment, self.model.name
        ctx.route = "provider-batch"
        ctx.status = int(response.get("status_code") or 500)
        ctx.usage = Usage.from_openai(reply.get("usage")) if ctx.status == 200 else None
        if ctx.status != 200:
            ctx.error_type = "batch_error"
        ctx.decisions["batch"] = state["id"]
        ctx.decisions["batch_discount"] = self.discount
        self.record(ctx)
