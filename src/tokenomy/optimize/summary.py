"""Summaries of the turns history trimming dropped, written by a configured (cheap or local) model.

The summary request goes through the gateway's own routing and is recorded in the usage ledger
like any request, with the task ``history-summary``, so its cost is visible next to what the
trimming saved. Its answer is inserted where the dropped turns were, as a system message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tokenomy.optimize.messages import role, text_of
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response

TASK = "history-summary"
PROMPT = (
    "Summarize these earlier turns of a conversation in at most five sentences. Keep every fact, name, "
    "number, decision and open question; leave out greetings and small talk. Write only the summary."
)
MAX_TOKENS = 256
TIMEOUT_S = 20.0
Summarize = Callable[[CallContext, str, list[Any]], Awaitable[str]]


def transcript(messages: list[Any]) -> str:
    """The dropped messages as ``role: text`` lines (tool calls by name)."""
    lines = []
    for message in messages:
        text = text_of(message)
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                text += f" [called {function.get('name')}({function.get('arguments')})]"
        if text.strip():
            lines.append(f"{role(message) or 'unknown'}: {text.strip()}")
    return "\n".join(lines)


def summary_message(summary: str, dropped: int) -> dict[str, Any]:
    """The system message that stands in for the dropped turns."""
    return {"role": "system", "content": f"Summary of {dropped} earlier messages: {summary.strip()}"}


def summarizer(handle: Callable[[CallContext], Awaitable[Response]]) -> Summarize:
    """A summarize function that sends its requests through ``handle`` (record, route, dispatch)."""

    async def summarize(parent: CallContext, model: str, messages: list[Any]) -> str:
        body = {
            "model": model,
            "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": transcript(messages)}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
        }
        ctx = CallContext(
            request_id=f"{parent.request_id}.summary",
            endpoint=Endpoint.CHAT,
            body=body,
            model=model,
            tenant=parent.tenant,
            api_key_name=parent.api_key_name,
            task=TASK,
        )
        response = await asyncio.wait_for(handle(ctx), TIMEOUT_S)
        if not isinstance(response, Completion):  # pragma: no cover - the request does not stream
            raise TypeError("the summary model answered with a stream")
        choices = response.body.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the summary model answered with no text")
        return content

    return summarize
