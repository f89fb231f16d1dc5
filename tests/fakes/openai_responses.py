"""The fake OpenAI server's Responses API (``POST /v1/responses``), plain and streamed, on the real wire format."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from tests.fakes.base import FAKE_KEY, SSE, FakeServer, Reply, chop, count_words, json_response, pieces

TOOL_ARGUMENTS = '{"arg": "x"}'


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [i for i in value or () if isinstance(i, dict)]


def _json_text(fmt: dict[str, Any], text: str) -> str:
    props = (fmt.get("schema") or {}).get("properties") if fmt.get("type") == "json_schema" else None
    if not props:
        return json.dumps({"echo": text})
    defaults = {"string": text, "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}
    return json.dumps({k: defaults.get(v.get("type")) for k, v in props.items()})


async def responses(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``: echoes the last user text; calls the first function tool after a user turn."""
    fake: FakeServer = request.app[FAKE_KEY]
    body, mode = await fake.prelude(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise Reply(fake.error(400, "Missing required parameter: 'model'.", param="model"))
    if "input" not in body:
        raise Reply(fake.error(400, "Missing required parameter: 'input'.", param="input"))
    if "previous_response_id" in body:  # the gateway keeps conversation state itself
        raise Reply(fake.error(400, "Previous response not found.", param="previous_response_id"))
    items = _items(body["input"])
    prompt = count_words(str(body.get("instructions") or "")) + sum(
        count_words(_text_of(i.get("content") or i.get("output") or i.get("arguments"))) for i in items
    )
    last = items[-1] if items else {}
    user_text = next((_text_of(i.get("content")) for i in reversed(items) if i.get("role") == "user"), "")
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    fmt = (body.get("text") or {}).get("format") or {}
    created = time.time()
    response: dict[str, Any] = {
        "id": fake.next_id("resp_"), "object": "response", "created_at": created, "status": "completed",
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None}, "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": None, "user": None,
        "metadata": body.get("metadata") or {}, "echoed_unknown": {k: body[k] for k in body if k.startswith("x_")},
    }  # fmt: skip
    if tools and last.get("role") == "user" and body.get("tool_choice") != "none":
        item = {"id": fake.next_id("fc_"), "type": "function_call", "status": "completed",
                "call_id": fake.next_id("call_"), "name": tools[0]["name"], "arguments": TOOL_ARGUMENTS}  # fmt: skip
        output_tokens = count_words(TOOL_ARGUMENTS)
    else:
        if mode == "slow_stream":
            text = " ".join(f"tick{i}" for i in range(fake.stream_chunks))
        elif fmt.get("type") in ("json_object", "json_schema"):
            text = _json_text(fmt, user_text)
        else:
            text = f"echo: {user_text}"
        limit = body.get("max_output_tokens")
        if isinstance(limit, int) and count_words(text) > limit:
            text = " ".join(text.split()[:limit])
            response["status"], response["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"id": fake.next_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                "content": [part]}  # fmt: skip
        output_tokens = count_words(text)
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output_tokens,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + output_tokens}  # fmt: skip
    final = {**response, "output": [item], "usage": usage}
    if body.get("stream") is not True:
        return json_response(final, headers={"x-request-id": fake.next_id("req_")})
    return await SSE(fake, request).emit(_events(response, final, item), mode)


def _events(opening: dict[str, Any], final: dict[str, Any], item: dict[str, Any]) -> list[tuple[str | None, Any]]:
    events: list[tuple[str | None, Any]] = []

    def add(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **data}))

    start = {**opening, "status": "in_progress"}
    add("response.created", response=start)
    add("response.in_progress", response=start)
    if item["type"] == "function_call":
        add("response.output_item.added", output_index=0, item={**item, "arguments": "", "status": "in_progress"})
        for piece in chop(item["arguments"]):
            add("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=piece)
        add("response.function_call_arguments.done", item_id=item["id"], output_index=0, arguments=item["arguments"])
    else:
        part = item["content"][0]
        add("response.output_item.added", output_index=0, item={**item, "content": [], "status": "in_progress"})
        add("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
            part={**part, "text": ""})  # fmt: skip
        for piece in pieces(part["text"]):
            add("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=piece,
                logprobs=[])  # fmt: skip
        add("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=part["text"],
            logprobs=[])  # fmt: skip
        add("response.content_part.done", item_id=item["id"], output_index=0, content_index=0, part=part)
    add("response.output_item.done", output_index=0, item=item)
    add("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
    return events
