"""``tokenomy report --shadow``: shadow copies against the production answers they copied.

Per task and candidate: how many copies were answered, agreement with production (the mean cosine
of the two answers' MiniLM embeddings, with its 95% interval; only where the ledger kept both
answers, i.e. ``ledger.store_prompts``), and the cost and latency of the copies against those of
the production requests they copied.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tokenomy.config.models import GatewayConfig
from tokenomy.evaluate.summary import bootstrap_ci
from tokenomy.ledger.stores import StoreUnavailable, store_for

_PAIRS = (
    "SELECT s.task, s.requested_model, p.requested_model, s.cost_usd, p.cost_usd, s.latency_ms, p.latency_ms, "
    "s.response, p.response, s.status FROM requests s JOIN requests p ON p.request_id = s.shadow_of "
    "WHERE s.shadow_of IS NOT NULL{window} ORDER BY s.ts"
)


class ShadowReportError(ValueError):
    """The ledger cannot be read."""


def shadow_rows(config: GatewayConfig, since: float | None, until: float | None) -> list[dict[str, Any]]:
    """One summary per (task, candidate, production model)."""
    try:
        store = store_for(config.ledger)
        conn = store.connect()
    except StoreUnavailable as exc:
        raise ShadowReportError(str(exc)) from None
    mark = "?" if store.dialect == "sqlite" else "%s"
    window, params = "", list[float]()
    if since is not None:
        window, params = window + f" AND s.ts >= {mark}", [*params, since]
    if until is not None:
        window, params = window + f" AND s.ts < {mark}", [*params, until]
    try:
        rows = conn.execute(_PAIRS.format(window=window), params).fetchall()
    except Exception as exc:
        raise ShadowReportError(f"reading the ledger {store.description} failed: {exc}") from None
    finally:
        conn.close()
    groups: dict[tuple[str, str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        groups[(row[0], row[1], row[2])].append(row)
    return [_summary(key, members) for key, members in groups.items()]


def _summary(key: tuple[str, str, str], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    ok = [r for r in rows if r[9] < 400]
    texts = [(r[7], r[8]) for r in ok if r[7] and r[8]]
    agreement = ci = None
    if texts:
        from tokenomy.providers.local.shared_embed import shared_embedder

        embed = shared_embedder().embed
        shadow, prod = embed([t[0] for t in texts]), embed([t[1] for t in texts])
        cosines = [float(x) for x in np.sum(shadow * prod, axis=1)]
        agreement, ci = float(np.mean(cosines)), bootstrap_ci(cosines)
    n = len(ok)
    return {
        "task": key[0],
        "candidate": key[1],
        "model": key[2],
        "copies": len(rows),
        "answered": n,
        "compared": len(texts),
        "agreement": None if agreement is None else round(agreement, 4),
        "agreement_ci": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
        "cost_usd_candidate": round(sum(r[3] for r in ok), 6),
        "cost_usd_model": round(sum(r[4] for r in ok), 6),
        "cost_delta_per_request_usd": None if not n else round((sum(r[3] for r in ok) - sum(r[4] for r in ok)) / n, 8),
        "p50_latency_ms_candidate": _median([r[5] for r in ok]),
        "p50_latency_ms_model": _median([r[6] for r in ok]),
        "mean_latency_delta_ms": None if not n else round(float(np.mean([r[5] - r[6] for r in ok])), 1),
    }


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def render_shadow(rows: list[dict[str, Any]], fmt: str, console: Console) -> None:
    """Table or JSON."""
    if fmt == "json":
        console.print_json(json.dumps({"shadow": rows}))
        return
    table = Table(title="shadow traffic: candidate copies against production", title_justify="left")
    for name in (
        "task",
        "model -> candidate",
        "copies",
        "agreement [95% CI]",
        "cost delta / req",
        "p50 ms model",
        "p50 ms candidate",
    ):
        table.add_column(name, justify="left" if name in ("task", "model -> candidate") else "right")
    for r in rows:
        agree = (
            "-"
            if r["agreement"] is None
            else (f"{r['agreement']:.3f} [{r['agreement_ci'][0]:.3f}, {r['agreement_ci'][1]:.3f}] n={r['compared']}")
        )
        delta = r["cost_delta_per_request_usd"]
        table.add_row(
            r["task"],
            f"{r['model']} -> {r['candidate']}",
            f"{r['answered']}/{r['copies']}",
            agree,
            "-" if delta is None else f"${delta:+.6f}",
            _ms(r["p50_latency_ms_model"]),
            _ms(r["p50_latency_ms_candidate"]),
        )
    console.print(table if rows else "no shadow copies in this window")
    if any(r["agreement"] is None for r in rows):
        console.print("agreement needs both answers in the ledger: set ledger.store_prompts: true")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def shadow_command(config_path: Any, since: float | None, until: float | None, fmt: str) -> None:
    """``tokenomy report --shadow`` (table, or JSON with ``--format json``)."""
    import sys

    import click

    from tokenomy.config import ConfigError, load_config

    try:
        rows = shadow_rows(load_config(config_path), since, until)
    except (ConfigError, ShadowReportError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    render_shadow(rows, "json" if fmt == "json" else "table", Console())
