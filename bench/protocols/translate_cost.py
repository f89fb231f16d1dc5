"""CPU cost of the client-protocol translations on the request path (one command, prints a table).

    PYTHONPATH=src python bench/protocols/translate_cost.py

Each step runs 20,000 times, five times over; the figure is CPU time (``time.process_time``) per
call, so it holds on a busy machine where wall-clock timings would not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from tokenomy.server import anthropic_wire
from tokenomy.server.responses_events import response_from_chat
from tokenomy.server.responses_wire import check_request, normalize_items, to_chat

ANSWER: dict[str, Any] = {
    "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_x",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today? " * 4,
                                         "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}  # fmt: skip
RESPONSES_REQUEST = {"model": "fast", "input": [{"role": "user", "content": "hello there, how are you"}],
                     "instructions": "be brief", "max_output_tokens": 64}  # fmt: skip
MESSAGES_REQUEST = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}],
                    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
                    }  # fmt: skip


def cpu_us(fn: Callable[[], object], n: int = 20_000) -> tuple[float, float, float]:
    """Median, min and max CPU microseconds per call over five runs."""
    runs = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - start) / n * 1e6)
    return statistics.median(runs), min(runs), max(runs)


def main() -> None:
    """Print the table."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("`model` field set on a whole chat answer (copy + orjson.dumps, 549 bytes)",
         lambda: orjson.dumps({**ANSWER, "model": "fast"})),
        ("Responses request -> chat (check, normalize items, translate)",
         lambda: to_chat(check_request(RESPONSES_REQUEST), normalize_items(RESPONSES_REQUEST["input"]))),
        ("chat answer -> Responses `response` object", lambda: response_from_chat(ANSWER, RESPONSES_REQUEST, "r", "m")),
        ("Messages request -> chat, with the field-fate check",
         lambda: (anthropic_wire.messages_request_to_openai(MESSAGES_REQUEST, []),
                  anthropic_wire.untranslated(MESSAGES_REQUEST))),
    ]  # fmt: skip
    print("| step | CPU µs per call: median of 5 runs (min-max) |\n|---|---|")
    for name, fn in steps:
        median, low, high = cpu_us(fn)
        print(f"| {name} | {median:.1f} ({low:.1f}-{high:.1f}) |")


if __name__ == "__main__":
    main()
