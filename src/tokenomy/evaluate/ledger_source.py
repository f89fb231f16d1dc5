"""Evaluation items from the usage ledger: a task's real traffic, as stored with ``store_prompts``.

Only successful chat requests that reached a model (not cache hits) with a stored prompt count.
Repeated prompts become one item (the first logged answer is its reference). ``sample`` takes a
seeded random subset, so the same command picks the same requests.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from tokenomy.config.models import GatewayConfig
from tokenomy.evaluate import EVAL_USER
from tokenomy.evaluate.dataset import Dataset, EvalItem, stable_id
from tokenomy.ledger.stores import StoreUnavailable, store_for

DEFAULT_WINDOW_S = 7 * 86400
_SELECT = (
    "SELECT request_id, ts, prompt, response, requested_model, served_model, cost_usd, "
    "prompt_tokens, completion_tokens, latency_ms FROM requests "
    "WHERE task = {p} AND endpoint = 'chat' AND status = 200 AND prompt IS NOT NULL AND ts >= {p} "
    "AND cache NOT IN ('hit-exact', 'hit-semantic', 'coalesced') AND {not_eval} ORDER BY ts"
)
_VOLUME = "SELECT count(*), min(ts) FROM requests WHERE task = {p} AND status < 400 AND ts >= {p} AND {not_eval}"
_NOT_EVAL = f"(end_user IS NULL OR end_user != '{EVAL_USER}')"  # the evaluation's own calls are not traffic


class LedgerSourceError(ValueError):
    """The ledger cannot be read, or holds no usable requests for the task."""


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """A logged chat request with its stored prompt (and answer, when the ledger kept it)."""

    request_id: str
    ts: float
    messages: list[dict[str, Any]]
    response: str | None
    requested_model: str
    served_model: str | None
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


def _query(config: GatewayConfig, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    try:
        store = store_for(config.ledger)
        conn = store.connect()
    except StoreUnavailable as exc:
        raise LedgerSourceError(str(exc)) from None
    try:
        mark = "?" if store.dialect == "sqlite" else "%s"
        return list(conn.execute(sql.format(p=mark, not_eval=_NOT_EVAL), params).fetchall())
    except Exception as exc:  # a ledger without the response column (older schema) or a broken DB
        raise LedgerSourceError(f"reading the ledger {store.description} failed: {exc}") from None
    finally:
        conn.close()


def logged_requests(
    config: GatewayConfig, task: str, *, since: float | None = None, sample: int | None = None, seed: int = 0
) -> list[LoggedRequest]:
    """The task's logged requests with stored prompts since ``since`` (default: 7 days ago)."""
    start = time.time() - DEFAULT_WINDOW_S if since is None else since
    found: list[LoggedRequest] = []
    for row in _query(config, _SELECT, (task, start)):
        try:
            messages = json.loads(row[2])
        except ValueError:
            continue
        if not isinstance(messages, list) or not messages:
            continue
        found.append(
            LoggedRequest(
                row[0],
                float(row[1]),
                messages,
                row[3],
                row[4],
                row[5],
                float(row[6] or 0.0),
                int(row[7] or 0),
                int(row[8] or 0),
                float(row[9] or 0.0),
            )
        )
    if not found:
        raise LedgerSourceError(
            f"no successful chat requests with stored prompts for task {task!r} in the ledger since "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))} UTC "
            "(prompts are kept with ledger.store_prompts: true)"
        )
    if sample is not None and sample < len(found):
        found = sorted(random.Random(seed).sample(found, sample), key=lambda r: r.ts)
    return found


def task_volume(config: GatewayConfig, task: str, since: float | None = None) -> tuple[int, float]:
    """``(requests, seconds covered)`` of the task in the ledger since ``since`` (default 7 days)."""
    start = time.time() - DEFAULT_WINDOW_S if since is None else since
    rows = _query(config, _VOLUME, (task, start))
    count, first = rows[0] if rows else (0, None)
    covered = time.time() - (start if first is None else max(start, min(float(first), time.time())))
    return int(count or 0), max(covered, 3600.0)


def as_items(requests: list[LoggedRequest], task: str) -> list[EvalItem]:
    """One item per distinct prompt; the logged answer is the reference (``expected``)."""
    items: dict[str, EvalItem] = {}
    for req in requests:
        ident = stable_id(req.messages, None, {})
        if ident not in items:
            meta = {
                "request_id": req.request_id,
                "logged_model": req.served_model or req.requested_model,
                "logged_cost_usd": req.cost_usd,
            }
            items[ident] = EvalItem(ident, task, req.messages, req.response, {}, meta)
    return list(items.values())


def ledger_dataset(
    config: GatewayConfig, task: str, *, since: float | None = None, sample: int | None = None
) -> Dataset:
    """The task's traffic as a dataset (see the module docstring)."""
    requests = logged_requests(config, task, since=since, sample=sample)
    return Dataset(as_items(requests, task), 0, f"ledger:{task}")
