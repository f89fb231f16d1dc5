"""Volume past the self-hosting break-even → ``tokenomy plan``, with the money attached.

The figures are ``tokenomy plan``'s own (builds on the planning module: the same traffic read from the
ledger, the same API prices, GPU catalog, published throughput and sizing rules, at its defaults). When
a self-hosted option is the plan's cheapest for the window's traffic, the saving is the ledger's actual
spend scaled to a month minus that option's monthly cost. Otherwise the advice gets a note with the
volume at which self-hosting would break even.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from datetime import UTC, datetime

import click

from tokenomy.advise.data import Usage
from tokenomy.advise.detectors import Found
from tokenomy.ledger import rollup
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.planning import plan, traffic
from tokenomy.planning.plan_cli import build_planner
from tokenomy.reports.model import Window
from tokenomy.reports.render_table import short_money
from tokenomy.reports.sql import placeholder

API_MODELS = "gpt-4o-mini"
SELF_HOST_MODEL = "llama-3.1-8b"
GPUS = "l4,a10g,l40s,a100,h100"
"""``tokenomy plan``'s defaults: the API model priced, the open model and the GPU types considered."""


def self_hosting(
    store: LedgerStore,
    window: Window,
    usage: list[Usage],
    span: tuple[float, float],
    month_factor: float,
    notes: list[str],
) -> Iterator[Found]:
    """The plan's cheapest option for the window's traffic; a recommendation when it is self-hosted and cheaper
    than the window's spend scaled to a month as the plan scales it.

    The traffic is ``usage`` (the window's successful requests, already summed) and the busiest hour's output
    tokens from the hourly rollup (of the viewer's tenant only), over ``span`` (the window, or the records'
    own span when it is open). ``month_factor`` is the advice's own scale: the window saving returned is the
    monthly one divided by it.
    """
    since, until = span
    spend_usd = sum(u.cost_usd for u in usage)
    monthly_spend_usd = spend_usd * traffic.DAYS_PER_MONTH * 86400 / max(until - since, 1.0)
    try:
        t = traffic.from_totals(
            sum(u.requests for u in usage),
            float(sum(u.prompt_tokens for u in usage)),
            float(sum(u.cached_tokens for u in usage)),
            float(sum(u.completion_tokens for u in usage)),
            _peak_hour_output(store, window, since, until),
            since,
            until,
        )
        a = plan.Assumptions()
        planner, problems = build_planner(API_MODELS, SELF_HOST_MODEL, GPUS, None, None, None, a)
        decision = plan.decide(t, planner.options, a, problems)
    except (traffic.TrafficError, plan.PlanError, click.ClickException) as exc:
        notes.append(f"self-hosting was not priced: {' '.join(str(exc).split())}")
        return
    command = (
        f"tokenomy plan --since {_iso(since)} --until {_iso(until)} --self-host-model {shlex.quote(SELF_HOST_MODEL)}"
    )
    best = decision.best
    if best.kind != "self-hosted" or best.monthly_usd >= monthly_spend_usd:
        if decision.break_even_factor is not None:
            notes.append(
                f"self-hosting {SELF_HOST_MODEL} would be the cheapest option at {decision.break_even_factor:.3g}x "
                f"this volume ({command})"
            )
        return
    saving_month = monthly_spend_usd - best.monthly_usd
    yield Found(
        kind="self-host",
        title=f"Serve this volume on your own GPUs ({best.name})",
        task="*",
        model=SELF_HOST_MODEL,
        saving_usd=saving_month / month_factor if month_factor else 0.0,
        confidence="low",
        evidence=(
            f"the window's traffic is {t.requests:,.0f} requests, {t.input_tokens:,.0f} input and "
            f"{t.output_tokens:,.0f} output tokens a month (busiest hour {t.peak_to_mean:.1f}x the mean)",
            f"you spend {short_money(monthly_spend_usd)} a month on it; {best.name} costs "
            f"{short_money(best.monthly_usd)} a month ({best.replicas} replicas, {best.note or best.latency_at_peak})",
            f"the cheapest API option priced ({API_MODELS}) costs "
            + short_money(min((o.monthly_usd for o in decision.options if o.kind == "api"), default=0.0)),
        ),
        action=command,
        assumptions=(
            f"{SELF_HOST_MODEL} meets the quality bar of these tasks (evaluate it first: tokenomy evaluate)",
            "the GPU prices and throughput of the shipped catalog (edit them with --catalog, --published, "
            "or measure with tokenomy bench)",
            "staff time to run the GPUs is not counted",
        ),
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _peak_hour_output(store: LedgerStore, window: Window, since: float, until: float) -> float:
    """Output tokens of the busiest UTC hour touching ``[since, until)`` (whole hours, from the rollup)."""
    mark = placeholder(store.dialect)
    sql = f"SELECT hour, SUM(completion_tokens) FROM {rollup.TABLE} WHERE dim = 'tm' AND hour >= {mark}"
    sql += f" AND hour < {mark}"
    params: list[object] = [int(since // rollup.HOUR_S), int(-(-until // rollup.HOUR_S))]
    if window.tenant is not None:
        sql += f" AND tenant = {mark}"
        params.append(window.tenant)
    conn = store.connect()
    try:
        rows = conn.execute(f"{sql} GROUP BY hour ORDER BY 2 DESC LIMIT 1", params).fetchall()
    finally:
        conn.close()
    return float(rows[0][1] or 0) if rows else 0.0
