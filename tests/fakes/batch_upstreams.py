"""Fake provider batch APIs on real loopback sockets: OpenAI's Batch API and Anthropic's Message Batches.

Both answer like the real services: a batch stays ``in_progress`` for ``polls_until_done`` status
reads, then ends with ``outcome`` (``completed``, ``expired``; a cancelled batch ends ``cancelled``).
Requests whose user text contains ``FAIL`` fail; when a batch expires or is cancelled, only the
first half of its requests have results. Answers echo the user text, with word counts as usage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.base import FAKE_KEY, FakeServer, Recorded, _headers, count_words, json_response
from tests.fakes.openai_upstream import OpenAIFake


class _BatchState:
    def __init__(self) -> None:
        self.polls_until_done = 2
        self.outcome = "completed"
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        self.polls: dict[str, int] = {}


def _user_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        return ""
    content = messages[-1].get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _failure(fake: FakeServer, text: str) -> str:
    """A failed request's error message; with ECHO in the prompt it quotes the headers (credentials
    included) of the call the fake is answering, as a careless provider might."""
    if "ECHO" in text:
        return f"fake failure; received headers: {dict(fake.requests[-1].headers)}"
    return "fake failure"


def _finished(state: _BatchState, batch_id: str, status: str) -> str:
    """The status after one more poll: ``in_progress`` until enough polls, then the end status."""
    state.polls[batch_id] = state.polls.get(batch_id, 0) + 1
    if status in ("cancelling", "canceling"):
        return "cancelled"
    return state.outcome if state.polls[batch_id] > state.polls_until_done else status


# -- OpenAI ---------------------------------------------------------------------------------------------
class OpenAIBatchFake(OpenAIFake):
    """The OpenAI fake plus ``/v1/files`` and ``/v1/batches``."""

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.batch = _BatchState()

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/v1/files", _oa_upload)
        app.router.add_get("/v1/files/{id}/content", _oa_content)
        app.router.add_post("/v1/batches", _oa_create)
        app.router.add_get("/v1/batches/{id}", _oa_get)
        app.router.add_post("/v1/batches/{id}/cancel", _oa_cancel)


def _oa(request: web.Request) -> OpenAIBatchFake:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, OpenAIBatchFake)
    return fake


async def _oa_upload(request: web.Request) -> web.StreamResponse:
    fake = _oa(request)
    form = await request.post()
    fake.requests.append(Recorded(request.path, _headers(request), {"purpose": form.get("purpose")}))
    denied = fake.check_auth(request)
    if denied is not None:
        return denied
    upload = form.get("file")
    if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
        return fake.error(400, "purpose must be batch and file a file")
    file_id = fake.next_id("file-")
    fake.batch.files[file_id] = upload.file.read()
    return json_response({"id": file_id, "object": "file", "bytes": len(fake.batch.files[file_id]),
                          "created_at": int(time.time()), "filename": upload.filename, "purpose": "batch"})  # fmt: skip


async def _oa_content(request: web.Request) -> web.StreamResponse:
    fake = _oa(request)
    await fake.prelude(request)
    data = fake.batch.files.get(request.match_info["id"])
    if data is None:
        return fake.error(404, "No such File object")
    return web.Response(body=data, content_type="application/octet-stream")


async def _oa_create(request: web.Request) -> web.StreamResponse:
    fake = _oa(request)
    body, _ = await fake.prelude(request)
    raw = fake.batch.files.get(body.get("input_file_id", ""))
    if raw is None:
        return fake.error(404, "No such File object")
    batch_id = fake.next_id("batch_")
    fake.batch.inputs[batch_id] = [json.loads(line) for line in raw.splitlines() if line.strip()]
    fake.batch.batches[batch_id] = {
        "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "status": "in_progress",
        "input_file_id": body["input_file_id"], "completion_window": "24h", "created_at": int(time.time()),
        "output_file_id": None, "error_file_id": None, "errors": None,
        "request_counts": {"total": len(fake.batch.inputs[batch_id]), "completed": 0, "failed": 0},
    }  # fmt: skip
    return json_response(fake.batch.batches[batch_id])


async def _oa_get(request: web.Request) -> web.StreamResponse:
    fake = _oa(request)
    await fake.prelude(request)
    batch = fake.batch.batches.get(request.match_info["id"])
    if batch is None:
        return fake.error(404, "No such Batch object")
    if batch["status"] in ("in_progress", "cancelling"):
        batch["status"] = _finished(fake.batch, batch["id"], batch["status"])
        if batch["status"] != "in_progress":
            _oa_results(fake, batch)
    return json_response(batch)


async def _oa_cancel(request: web.Request) -> web.StreamResponse:
    fake = _oa(request)
    await fake.prelude(request)
    batch = fake.batch.batches[request.match_info["id"]]
    batch["status"] = "cancelling"
    return json_response(batch)


def _oa_results(fake: OpenAIBatchFake, batch: dict[str, Any]) -> None:
    lines = fake.batch.inputs[batch["id"]]
    ran = len(lines) if batch["status"] == "completed" else len(lines) // 2
    ok: list[str] = []
    bad: list[str] = []
    for i, line in enumerate(lines):
        rid = f"batch_req_fake_{i}"
        if i >= ran:
            code = "batch_expired" if batch["status"] == "expired" else "batch_cancelled"
            error = {"code": code, "message": f"This request {batch['status']}."}
            bad.append(json.dumps({"id": rid, "custom_id": line["custom_id"], "response": None, "error": error}))
            continue
        body = line["body"]
        text = _user_text(body.get("messages"))
        if "FAIL" in text:
            message = _failure(fake, text)
            error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            bad.append(json.dumps({"id": rid, "custom_id": line["custom_id"], "error": None,
                                   "response": {"status_code": 400, "request_id": rid, "body": error}}))  # fmt: skip
            continue
        reply = f"echo: {text}"
        usage = {"prompt_tokens": count_words(text), "completion_tokens": count_words(reply)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        answer = {"id": f"chatcmpl-b{i}", "object": "chat.completion", "created": int(time.time()),
                  "model": body["model"], "usage": usage,
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": reply}}]}  # fmt: skip
        ok.append(json.dumps({"id": rid, "custom_id": line["custom_id"], "error": None,
                              "response": {"status_code": 200, "request_id": rid, "body": answer}}))  # fmt: skip
    for kind, rows in (("output_file_id", ok), ("error_file_id", bad)):
        if rows:
            file_id = fake.next_id("file-")
            fake.batch.files[file_id] = ("\n".join(rows) + "\n").encode()
            batch[kind] = file_id
    batch["request_counts"].update(completed=len(ok), failed=len(bad))


async def start_openai_batch_fake(**opts: Any) -> OpenAIBatchFake:
    """Start an :class:`OpenAIBatchFake`."""
    opts.setdefault("models", ("gpt-4o-mini",))
    return await OpenAIBatchFake(**opts).start()


# -- Anthropic ------------------------------------------------------------------------------------------
class AnthropicBatchFake(AnthropicFake):
    """The Anthropic fake plus ``/v1/messages/batches``."""

    def __init__(self, **opts: Any) -> None:
        super().__init__(**opts)
        self.batch = _BatchState()

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_post("/v1/messages/batches", _an_create)
        app.router.add_get("/v1/messages/batches/{id}", _an_get)
        app.router.add_get("/v1/messages/batches/{id}/results", _an_results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", _an_cancel)


def _an(request: web.Request) -> AnthropicBatchFake:
    fake = request.app[FAKE_KEY]
    assert isinstance(fake, AnthropicBatchFake)
    return fake


def _an_object(fake: AnthropicBatchFake, batch_id: str) -> dict[str, Any]:
    batch = fake.batch.batches[batch_id]
    return {k: v for k, v in batch.items() if not k.startswith("_")}


async def _an_create(request: web.Request) -> web.StreamResponse:
    fake = _an(request)
    body, _ = await fake.prelude(request)
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return fake.error(400, "requests: must be a non-empty list")
    for entry in requests:
        params = entry.get("params") or {}
        if not isinstance(params.get("max_tokens"), int) or not params.get("messages"):
            return fake.error(400, "params: max_tokens and messages are required")
    batch_id = fake.next_id("msgbatch_")
    fake.batch.inputs[batch_id] = requests
    fake.batch.batches[batch_id] = {
        "id": batch_id, "type": "message_batch", "processing_status": "in_progress",
        "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "created_at": "2026-01-01T00:00:00Z", "ended_at": None, "results_url": None, "_status": "in_progress",
    }  # fmt: skip
    return json_response(_an_object(fake, batch_id))


async def _an_get(request: web.Request) -> web.StreamResponse:
    fake = _an(request)
    await fake.prelude(request)
    batch = fake.batch.batches.get(request.match_info["id"])
    if batch is None:
        return fake.error(404)
    if batch["processing_status"] != "ended":
        status = _finished(fake.batch, batch["id"], batch["_status"])
        if status != "in_progress":
            batch["_status"], batch["processing_status"] = status, "ended"
            batch["results_url"] = f"{fake.url}/v1/messages/batches/{batch['id']}/results"
            _an_compute(fake, batch)
    return json_response(_an_object(fake, batch["id"]))


def _an_compute(fake: AnthropicBatchFake, batch: dict[str, Any]) -> None:
    requests = fake.batch.inputs[batch["id"]]
    ran = len(requests) if batch["_status"] == "completed" else len(requests) // 2
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    lines = []
    for i, entry in enumerate(requests):
        params = entry["params"]
        if i >= ran:
            kind = "expired" if batch["_status"] == "expired" else "canceled"
            result: dict[str, Any] = {"type": kind}
        elif "FAIL" in (text := _user_text(params["messages"])):
            kind = "errored"
            inner = {"type": "invalid_request_error", "message": _failure(fake, text)}
            result = {"type": "errored", "error": {"type": "error", "error": inner}}
        else:
            kind = "succeeded"
            reply = f"echo: {text}"
            message = {"id": f"msg_b{i}", "type": "message", "role": "assistant", "model": params["model"],
                       "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": None,
                       "usage": {"input_tokens": count_words(text), "output_tokens": count_words(reply)}}  # fmt: skip
            result = {"type": "succeeded", "message": message}
        counts[kind] += 1
        lines.append(json.dumps({"custom_id": entry["custom_id"], "result": result}))
    batch["request_counts"] = counts
    batch["_results"] = ("\n".join(lines) + "\n").encode()


async def _an_results(request: web.Request) -> web.StreamResponse:
    fake = _an(request)
    await fake.prelude(request)
    batch = fake.batch.batches.get(request.match_info["id"])
    if batch is None or "_results" not in batch:
        return fake.error(404)
    return web.Response(body=batch["_results"], content_type="application/binary")


async def _an_cancel(request: web.Request) -> web.StreamResponse:
    fake = _an(request)
    await fake.prelude(request)
    batch = fake.batch.batches[request.match_info["id"]]
    if batch["processing_status"] != "ended":
        batch["processing_status"], batch["_status"] = "canceling", "canceling"
    return json_response(_an_object(fake, batch["id"]))


async def start_anthropic_batch_fake(**opts: Any) -> AnthropicBatchFake:
    """Start an :class:`AnthropicBatchFake`."""
    return await AnthropicBatchFake(**opts).start()


def provider_batch_config(
    batch_dir: Path, oa: OpenAIBatchFake, an: AnthropicBatchFake, oa_key: str, an_key: str, extra: str = ""
) -> str:
    """A gateway config whose ``gpt-batch`` and ``claude-batch`` models run on these fakes' batch APIs
    (keys from variables that are unset in tests, so the defaults ``oa_key`` and ``an_key`` apply)."""
    return f"""
batches: {{dir: "{batch_dir}", provider_models: [gpt-batch, claude-batch], poll_interval_s: 0.05}}
{extra}
models:
  - name: gpt-batch
    deployments:
      - {{provider: openai, base_url: "{oa.base_url}", api_key: "${{T_UNSET_OA:-{oa_key}}}", model: gpt-4o-mini}}
  - name: claude-batch
    deployments:
      - {{provider: anthropic, base_url: "{an.base_url}", api_key: "${{T_UNSET_AN:-{an_key}}}",
          model: claude-3-5-haiku-latest}}
"""
