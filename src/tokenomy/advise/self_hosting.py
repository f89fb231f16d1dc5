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

from tokenomy.advise.detectors import Found
from tokenomy.ledger.stores.base import LedgerStore
from tokenomy.planning import plan, traffic
from tokenomy.planning.plan_cli import build_planner
from tokenomy.reports.render_table import short_money

API_MODELS = "gpt-4o-mini"
SELF_HOST_MODEL = "llama-3.1-8b"
GPUS = "l4,a10g,l40s,a100,h100"
"""``tokenomy plan``'s defaults: the API model priced, the open model and the GPU types considered."""


def self_hosting(
    store: LedgerStore, since: float, until: float, spend_usd: float, month_factor: float, notes: list[str]
) -> Iterator[Found]:
    """The plan's cheapest option for the traffic of ``[since, until)`` (which cost ``spend_usd``); a
    recommendation when it is self-hosted and cheaper than the spend scaled to a month as the plan scales.

    ``month_factor`` is the advice's own scale: the window saving returned is the monthly one divided by it.
    """
    monthly_spend_usd = spend_usd * traffic.DAYS_PER_MONTH * 86400 / max(until - since, 1.0)
    try:
        t = traffic.from_ledger(store, since, until, [])
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
