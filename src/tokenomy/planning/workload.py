"""Benchmark workloads: the requests ``tokenomy bench`` sends, from a JSONL file, the ledger, or fixed lengths.

Ledger workloads copy the length distribution of recorded traffic (prompt and completion tokens
of successful requests, per task if asked); the prompt text is filler of about that many tokens
(one word per token, an approximation that holds for English-like tokenizers), since the ledger
keeps prompts only as hashes unless told otherwise.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenomy.ledger.stores.base import LedgerStore

_FILLER = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "it", "rains")


_OWN_FIELDS = frozenset({"messages", "prompt", "max_tokens", "model", "stream", "stream_options"})


class WorkloadError(Exception):
    """The workload cannot be built; the message says what is missing and how to supply it."""


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One request to send: chat ``messages`` or a completions ``prompt``, ``max_tokens``, and other
    body fields (``extra``: sampling parameters such as ``temperature`` or ``logit_bias``) as given."""

    messages: list[dict[str, Any]] | None
    prompt: str | None
    max_tokens: int | None
    extra: dict[str, Any] | None = None


def filler(tokens: int, seed: int) -> str:
    """About ``tokens`` words of text (varied by ``seed`` so prefix caches do not serve every request)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(_FILLER) for _ in range(max(1, tokens)))


def synthetic(spec: str, count: int) -> list[BenchRequest]:
    """``count`` requests of fixed lengths from ``in=512,out=128``."""
    fields: dict[str, int] = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        try:
            fields[key.strip()] = int(value)
        except ValueError:
            raise WorkloadError(f"--synthetic {spec!r}: expected in=TOKENS,out=TOKENS (e.g. in=512,out=128)") from None
    if set(fields) != {"in", "out"} or min(fields.values()) < 1:
        raise WorkloadError(f"--synthetic {spec!r}: expected in=TOKENS,out=TOKENS with both at least 1")
    return [_chat(filler(fields["in"], i), fields["out"]) for i in range(count)]


def from_jsonl(path: Path, count: int) -> list[BenchRequest]:
    """Requests from a JSONL file (``messages`` or ``prompt``, optional ``max_tokens``), cycled to ``count``.

    Other fields of a line (``temperature``, ``logit_bias``, ...) are sent as they are; the
    benchmark's own (``model``, ``stream``, ``stream_options``) cannot be overridden.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc.strerror or exc}") from None
    items: list[BenchRequest] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise WorkloadError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(row, dict) or not (
            isinstance(row.get("messages"), list) or isinstance(row.get("prompt"), str)
        ):
            raise WorkloadError(f'{path}:{number}: each line needs "messages" (a list) or "prompt" (a string)')
        max_tokens = row.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise WorkloadError(f"{path}:{number}: max_tokens must be a positive integer")
        extra = {k: v for k, v in row.items() if k not in _OWN_FIELDS}
        items.append(BenchRequest(row.get("messages"), row.get("prompt"), max_tokens, extra or None))
    if not items:
        raise WorkloadError(f"{path} holds no requests")
    return [items[i % len(items)] for i in range(count)]


def ledger_lengths(store: LedgerStore, since: float | None, task: str | None) -> list[tuple[int, int]]:
    """(prompt, completion) token counts of successful requests in the window, for one task or all."""
    mark = "%s" if store.dialect == "postgres" else "?"
    where: list[str] = ["status = 200", "completion_tokens > 0"]
    params: list[object] = []
    if since is not None:
        where.append(f"ts >= {mark}")
        params.append(since)
    if task is not None:
        where.append(f"task = {mark}")
        params.append(task)
    text = f"SELECT prompt_tokens, completion_tokens FROM requests WHERE {' AND '.join(where)}"
    conn = store.connect()
    try:
        rows = conn.execute(text, params).fetchall()
    finally:
        conn.close()
    return [(int(p), int(c)) for p, c in rows]


def from_lengths(
    lengths: list[tuple[int, int]], count: int, seed: int = 0, what: str = "the ledger"
) -> list[BenchRequest]:
    """``count`` requests whose lengths are drawn from ``lengths`` (with replacement)."""
    if not lengths:
        raise WorkloadError(
            f"{what} has no successful requests in the window: widen --since, drop --task, "
            "or use --synthetic in=512,out=128 or --dataset FILE"
        )
    rng = random.Random(seed)
    picks = [rng.choice(lengths) for _ in range(count)]
    return [_chat(filler(p, i), c) for i, (p, c) in enumerate(picks)]


def _chat(text: str, max_tokens: int) -> BenchRequest:
    return BenchRequest([{"role": "user", "content": text}], None, max_tokens)
