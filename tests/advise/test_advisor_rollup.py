"""The advisor on a long ledger: sums and arrival pattern from the hourly rollup (equal to the raw records'),
bursts found in whole hours, and repeats measured on a bounded sample and scaled to the window."""

from __future__ import annotations

import hashlib
import random

import pytest
from tests.ledger.test_stores import StoreFactory, new_store, opened
from tests.reports.helpers import MODEL_YAML

from tokenomy.advise import data
from tokenomy.advise.advisor import advise
from tokenomy.advise.data import LedgerReader, Usage
from tokenomy.config import parse_config
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.reports.model import Window
from tokenomy.reports.sql import where

__all__ = ["new_store"]  # the fixture, imported for pytest

CONFIG = parse_config(MODEL_YAML)  # model "fast": openai/gpt-4o-mini
START = 1_760_000_123.0  # not on an hour
HOURS = 144  # six days: past the span from which bursts are found in whole hours
POOL = 10  # distinct prompts of the repeating task
DUP_COST = 0.002


def _record(i: int, task: str, ts: float, rng: random.Random, **extra: object) -> LedgerRecord:
    fields: dict[str, object] = {
        "request_id": f"{task}-{i}",
        "ts": ts,
        "tenant": rng.choice(("red", "blue")),
        "task": task,
        "requested_model": "fast",
        "served_model": "fast",
        "deployment": "openai/gpt-4o-mini",
        "provider": "openai",
        "prompt_tokens": rng.randint(20, 200),
        "completion_tokens": rng.randint(5, 60),
        "cache": "none",
        "cost_usd": rng.random() / 1000,
        "prompt_hash": hashlib.sha256(f"{task}{i}".encode()).hexdigest()[:32],
        **extra,
    }
    return LedgerRecord(**fields)  # type: ignore[arg-type]


def records(seed: int = 5) -> list[LedgerRecord]:
    """Six days: a task repeating 10 prompts (cache bypassed) and a streamed chat task spread evenly, a
    nightly burst of non-streamed requests within one hour, and some errors."""
    rng = random.Random(seed)
    out = []
    for i in range(600):
        out.append(
            _record(
                i,
                "lookup",
                START + rng.random() * HOURS * 3600,
                rng,
                cache="bypass",
                cost_usd=DUP_COST,
                prompt_hash=f"p{i % POOL}",
                stream=True,
            )
        )
    for i in range(300):
        out.append(_record(i, "chat", START + rng.random() * HOURS * 3600, rng, stream=True))
    for i in range(80):  # the nightly job: within 40 minutes of day 3
        out.append(_record(i, "nightly", START + 50 * 3600 + rng.random() * 2400, rng))
    for i in range(30):
        out.append(_record(i, "chat", START + rng.random() * HOURS * 3600, rng, status=500, request_id=f"err-{i}"))
    return out


def raw_usage(store: LedgerStore, window: Window) -> list[Usage]:
    """What the advisor summed from every raw record before the rollup existed."""
    clause, params = where(window, store.dialect, extra=("status < 400",))
    model = "COALESCE(served_model, requested_model)"
    sql = (
        f"SELECT task, {model}, deployment, provider, COUNT(*), SUM(CASE WHEN stream THEN 1 ELSE 0 END), "
        "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), MIN(ts), MAX(ts) "
        f"FROM requests{clause} GROUP BY 1, 2, 3, 4"
    )
    conn = store.connect()
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    out = [
        Usage(str(t), str(m), d, p, int(n), int(s), int(pt), int(ct), int(ca), round(float(c), 9), float(a), float(b))
        for t, m, d, p, n, s, pt, ct, ca, c, a, b in rows
    ]
    return sorted(out, key=lambda u: (u.task, u.model, u.deployment or "", u.provider or ""))


def _rounded(usage: list[Usage]) -> list[Usage]:
    return [
        Usage(
            u.task,
            u.model,
            u.deployment,
            u.provider,
            u.requests,
            u.streamed,
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            round(u.cost_usd, 9),
            u.first_ts,
            u.last_ts,
        )
        for u in usage
    ]


@pytest.mark.parametrize(
    "window",
    [
        Window(),
        Window(START + 1234.5, START + 90 * 3600 + 17.25),  # partial hours at both edges
        Window(START + 600, START + 1500),  # inside one hour
        Window(START + 3 * 3600 + 5, None, tenant="red"),
    ],
)
def test_sums_from_the_rollup_equal_the_raw_records(new_store: StoreFactory, window: Window) -> None:
    store = opened(new_store)
    store.write(records())
    found = LedgerReader(store, window).usage()
    assert found and _rounded(found) == raw_usage(store, window)


def test_a_burst_is_found_in_whole_hours_and_spread_traffic_is_not(new_store: StoreFactory) -> None:
    store = opened(new_store)
    store.write(records())
    advice = advise(store, CONFIG)
    assert advice.span_s > 100 * 3600  # the hourly path
    batch = [r for r in advice.recommendations if r.kind == "batch"]
    assert [r.task for r in batch] == ["nightly"]


def test_repeats_on_a_sample_are_scaled_to_the_window(new_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    store = opened(new_store)
    store.write(records())
    true_saving = (600 - POOL) * DUP_COST  # every repeat of the 10 prompts was paid in full

    whole = [r for r in advise(store, CONFIG).recommendations if r.kind == "cache"]
    assert [r.task for r in whole] == ["lookup"]
    assert whole[0].window_saving_usd == pytest.approx(true_saving, rel=1e-9)  # the sample held every record

    monkeypatch.setattr(data, "SAMPLE", 250)  # about a quarter of the records: the newest 40 hours or so
    sampled = [r for r in advise(store, CONFIG).recommendations if r.kind == "cache"]
    assert [r.task for r in sampled] == ["lookup"]
    saving = sampled[0].window_saving_usd
    assert 0.9 * true_saving <= saving <= true_saving * (1 + 1e-9)  # within 10%, and never above the truth
    assert any("scaled" in line for line in sampled[0].evidence)
