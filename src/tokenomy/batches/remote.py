"""Provider batch APIs: OpenAI's Batch API, and Anthropic's Message Batches translated.

A batch for a model listed in ``batches.provider_models`` is sent whole to the provider's own
batch API (billed at about half price), polled, and its results mapped back onto our items by
``custom_id``. Pure translation lives in the functions here; the classes do the HTTP. Every error
text taken from a provider (a failed call, the batch's ``errors``, a failed request's error) passes
through the redactor, as on the live path: a provider that quotes the credentials it received
leaks nothing to clients or logs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from tokenomy.batches.store import Item
from tokenomy.config.models import Deployment
from tokenomy.providers.anthropic.translate import from_anthropic_response, to_anthropic_request
from tokenomy.redaction import redact, redact_json

TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """A provider batch's state in OpenAI's vocabulary, with its counts when known."""

    status: str
    completed: int = 0
    failed: int = 0
    errors: dict[str, Any] | None = None


class RemoteBatches(Protocol):
    """One provider's batch API."""

    async def submit(self, items: list[Item], endpoint: str) -> str:
        """Send the items; the provider's batch id."""

    async def poll(self, remote_id: str) -> RemoteStatus:
        """The provider batch's status."""

    async def results(self, remote_id: str) -> dict[str, dict[str, Any]]:
        """``custom_id -> {"response": ..., "error": ...}`` for every finished request."""

    async def cancel(self, remote_id: str) -> None:
        """Ask the provider to stop the batch."""


class _Http:
    def __init__(self, deployment: Deployment, headers: dict[str, str]) -> None:
        self.dep = deployment
        self.base = deployment.base_url or ""
        self.headers = {**deployment.headers, **headers}
        self.timeout = aiohttp.ClientTimeout(total=deployment.timeout_s, connect=deployment.connect_timeout_s)

    async def call(self, method: str, path: str, **kw: Any) -> bytes:
        async with (
            aiohttp.ClientSession(timeout=self.timeout, headers=self.headers) as session,
            session.request(method, self.base + path, **kw) as resp,
        ):
            body = await resp.read()
            if resp.status >= 400:
                text = redact(body[:300].decode(errors="replace"))
                raise RemoteError(f"{method} {path} answered {resp.status}: {text}")
            return body


class RemoteError(Exception):
    """A provider batch call failed; the runner retries on its next poll."""


class OpenAIBatches(_Http):
    """OpenAI's ``/files`` + ``/batches`` (any deployment that speaks it)."""

    def __init__(self, deployment: Deployment) -> None:
        key = (deployment.api_key.resolve() or "") if deployment.api_key is not None else ""
        super().__init__(deployment, {"authorization": f"Bearer {key}"})

    async def submit(self, items: list[Item], endpoint: str) -> str:
        lines = b"".join(orjson.dumps(openai_line(item, endpoint, self.dep.model)) + b"\n" for item in items)
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", lines, filename="batch.jsonl", content_type="application/jsonl")
        uploaded = orjson.loads(await self.call("POST", "/files", data=form))
        body = {"input_file_id": uploaded["id"], "endpoint": endpoint, "completion_window": "24h"}
        return str(orjson.loads(await self.call("POST", "/batches", json=body))["id"])

    async def poll(self, remote_id: str) -> RemoteStatus:
        batch = orjson.loads(await self.call("GET", f"/batches/{remote_id}"))
        self._files = (batch.get("output_file_id"), batch.get("error_file_id"))
        counts = batch.get("request_counts") or {}
        return RemoteStatus(
            batch["status"],
            int(counts.get("completed") or 0),
            int(counts.get("failed") or 0),
            redact_json(batch.get("errors")),
        )

    async def results(self, remote_id: str) -> dict[str, dict[str, Any]]:
        await self.poll(remote_id)
        out: dict[str, dict[str, Any]] = {}
        for file_id in self._files:
            if file_id:
                for raw in (await self.call("GET", f"/files/{file_id}/content")).splitlines():
                    if raw.strip():
                        line = orjson.loads(raw)
                        out[line["custom_id"]] = openai_result(line)
        return out

    async def cancel(self, remote_id: str) -> None:
        await self.call("POST", f"/batches/{remote_id}/cancel")


class AnthropicBatches(_Http):
    """Anthropic's Message Batches, translated to and from OpenAI's chat shapes."""

    def __init__(self, deployment: Deployment) -> None:
        key = (deployment.api_key.resolve() or "") if deployment.api_key is not None else ""
        super().__init__(deployment, {"x-api-key": key, "anthropic-version": deployment.anthropic_version})
        self.model_name = deployment.model

    async def submit(self, items: list[Item], endpoint: str) -> str:
        requests = [
            {"custom_id": item.custom_id, "params": to_anthropic_request(item.request or {}, self.dep.model)}
            for item in items
        ]
        created = orjson.loads(await self.call("POST", "/v1/messages/batches", json={"requests": requests}))
        return str(created["id"])

    async def poll(self, remote_id: str) -> RemoteStatus:
        batch = orjson.loads(await self.call("GET", f"/v1/messages/batches/{remote_id}"))
        counts = batch.get("request_counts") or {}
        self._results_url = batch.get("results_url")
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        return RemoteStatus(anthropic_status(batch), int(counts.get("succeeded") or 0), failed)

    async def results(self, remote_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.call("GET", f"/v1/messages/batches/{remote_id}/results")
        out: dict[str, dict[str, Any]] = {}
        for line in raw.splitlines():
            if line.strip():
                entry = orjson.loads(line)
                out[entry["custom_id"]] = from_anthropic_result(entry, self.model_name)
        return out

    async def cancel(self, remote_id: str) -> None:
        await self.call("POST", f"/v1/messages/batches/{remote_id}/cancel")


def remote_for(deployment: Deployment) -> RemoteBatches | None:
    """The batch API of a deployment, when its provider has one."""
    if deployment.provider == "openai":
        return OpenAIBatches(deployment)
    if deployment.provider == "anthropic":
        return AnthropicBatches(deployment)
    return None


# -- pure translation -------------------------------------------------------------------------------
def openai_line(item: Item, endpoint: str, upstream_model: str) -> dict[str, Any]:
    """One input line for OpenAI, with the upstream's model id."""
    body = {**(item.request or {}), "model": upstream_model}
    return {"custom_id": item.custom_id, "method": "POST", "url": endpoint, "body": body}


def openai_result(line: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI batch output line's ``{"response", "error"}``, its error parts redacted (a failed
    request's response body is the provider's error)."""
    response = line.get("response")
    if isinstance(response, dict) and response.get("status_code") != 200:
        response = redact_json(response)
    return {"response": response, "error": redact_json(line.get("error"))}


def anthropic_status(batch: dict[str, Any]) -> str:
    """Anthropic's ``processing_status`` (in_progress, canceling, ended) in OpenAI's words."""
    status = batch.get("processing_status")
    if status == "in_progress":
        return "in_progress"
    if status == "canceling":
        return "cancelling"
    counts = batch.get("request_counts") or {}
    if counts.get("canceled"):
        return "cancelled"
    if counts.get("expired"):
        return "expired"
    return "completed"


def from_anthropic_result(entry: dict[str, Any], model_name: str) -> dict[str, Any]:
    """An Anthropic batch result line as OpenAI's ``{"response", "error"}``."""
    result = entry.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded":
        message = result["message"]
        body = from_anthropic_response(message, model_name, "chatcmpl-" + str(message.get("id", "")), int(time.time()))
        return {"response": {"status_code": 200, "request_id": message.get("id"), "body": body}, "error": None}
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or result.get("error") or {}
        body = {"error": {"message": redact(str(error.get("message", "error"))), "type": error.get("type"),
                          "param": None, "code": None}}  # fmt: skip
        return {"response": {"status_code": 400, "request_id": None, "body": body}, "error": None}
    code = "batch_expired" if kind == "expired" else "batch_cancelled"
    return {"response": None, "error": {"code": code, "message": f"The provider reported this request {kind}."}}
