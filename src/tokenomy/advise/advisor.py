"""Run every detector over a window of the ledger and rank what they found."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenomy.advise import detectors
from tokenomy.advise.data import LedgerReader
from tokenomy.advise.model import Advice, Confidence, Recommendation
from tokenomy.advise.prices import Prices
from tokenomy.advise.self_hosting import self_hosting
from tokenomy.advise.semantic import semantic_cache
from tokenomy.config.models import GatewayConfig
from tokenomy.config.policy import PolicyRouterConfig, PolicySet, TaskPolicy
from tokenomy.ledger.stores.base import LedgerStore, StoreUnavailable
from tokenomy.reports.model import Window
from tokenomy.reports.query import ReportError, one_line
from tokenomy.routing.policy import PolicyFileError, load_policy_file


def evidence_from(config: GatewayConfig, files: Sequence[Path]) -> dict[str, tuple[TaskPolicy, str]]:
    """Measured quality per task: the config's policy routers, then ``files`` (later ones win)."""
    found: dict[str, tuple[TaskPolicy, str]] = {}
    sets: list[tuple[PolicySet, str]] = []
    for router in config.routers:
        if isinstance(router, PolicyRouterConfig):
            try:
                policies = load_policy_file(router.policies_file) if router.policies_file else router.inline()
            except PolicyFileError:
                continue
            sets.append((policies, f"router {router.name!r}"))
    for path in files:
        try:
            sets.append((load_policy_file(path), f"evaluation file {path.name}"))
        except PolicyFileError as exc:
            raise ReportError(one_line(str(exc))) from None
    for policies, source in sets:
        for task, policy in policies.tasks.items():
            found[task] = (policy, source)
    return found


def advise(
    store: LedgerStore, config: GatewayConfig, window: Window | None = None, evidence_files: Sequence[Path] = ()
) -> Advice:
    """The ranked advice for ``window``; raises :class:`ReportError` when the ledger cannot be read."""
    evidence = evidence_from(config, evidence_files)
    try:
        return _advise(store, config, window or Window(), evidence)
    except StoreUnavailable as exc:
        raise ReportError(one_line(str(exc))) from None
    except _db_errors(store) as exc:
        raise ReportError(one_line(f"cannot read the ledger {store.description}: {exc}")) from None


def _db_errors(store: LedgerStore) -> tuple[type[Exception], ...]:
    if store.dialect == "postgres":
        import psycopg

        return (sqlite3.Error, psycopg.Error)
    return (sqlite3.Error,)


def _advise(
    store: LedgerStore, config: GatewayConfig, window: Window, evidence: dict[str, tuple[TaskPolicy, str]]
) -> Advice:
    reader = LedgerReader(store, window)
    try:
        return _advise_with(reader, store, config, window, evidence)
    finally:
        reader.close()


def _advise_with(
    reader: LedgerReader,
    store: LedgerStore,
    config: GatewayConfig,
    window: Window,
    evidence: dict[str, tuple[TaskPolicy, str]],
) -> Advice:
    prices = Prices(config)
    usage = reader.usage()
    advice = Advice(
        source=store.description,
        records=sum(u.requests for u in usage),
        spend_usd=sum(u.cost_usd for u in usage),
        first_ts=min((u.first_ts for u in usage), default=None),
        last_ts=max((u.last_ts for u in usage), default=None),
    )
    if not usage:
        advice.notes.append("no successful requests in the window: nothing to advise on")
        return advice
    found: list[detectors.Found] = [
        *detectors.duplicates(reader, usage),
        *detectors.prompt_prefixes(reader, usage, prices),
        *detectors.cheaper_models(usage, prices, evidence),
        *detectors.batchable(reader, usage, advice.first_ts, advice.span_s),
        *detectors.runaway_outputs(reader, usage, prices),
    ]
    if config.ledger.store_prompts:
        found += semantic_cache(reader, usage)
    if advice.first_ts is not None and advice.last_ts is not None:
        # the plan's traffic spans the window (or the records' own span when it is open)
        since = window.since if window.since is not None else advice.first_ts
        until = window.until if window.until is not None else advice.last_ts + 1.0
        found += self_hosting(store, window, usage, (since, until), advice.month_factor, advice.notes)
    long_prompts = any(u.prompt_tokens >= detectors.PROMPT_CACHE_MIN_TOKENS * u.requests for u in usage)
    if not config.ledger.store_prompts:
        advice.notes.append(
            "prompts are not stored (ledger.store_prompts: false): reworded repeats (semantic cache) were not measured"
        )
    if long_prompts and not config.ledger.store_prompts:
        advice.notes.append(
            "prompts are not stored (ledger.store_prompts: false): shared prompt prefixes were not measured"
        )
    if advice.span_s < 86400:
        advice.notes.append(
            f"the window holds {advice.span_s / 3600:.2g} h of traffic: monthly figures extrapolate it "
            f"{advice.month_factor:,.0f}-fold"
        )
    advice.recommendations = rank(found, advice.month_factor)
    return advice


def rank(found: Iterable[detectors.Found], month_factor: float) -> list[Recommendation]:
    """Scale to a month and sort by confidence-weighted saving (largest first)."""
    recs = [
        Recommendation(
            kind=f.kind,
            title=f.title,
            task=f.task,
            model=f.model,
            window_saving_usd=f.saving_usd,
            monthly_saving_usd=f.saving_usd * month_factor,
            confidence=_confidence(f.confidence),
            evidence=f.evidence,
            action=f.action,
            assumptions=(*f.assumptions, "traffic continues at the window's rate"),
        )
        for f in found
    ]
    recs.sort(key=lambda r: (-r.rank_score, r.title))
    return recs


_CONFIDENCES: dict[str, Confidence] = {"high": "high", "medium": "medium", "low": "low"}


def _confidence(value: str) -> Confidence:
    return _CONFIDENCES[value]
