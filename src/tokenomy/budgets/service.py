"""Admitting a request against its key's rate limits and every budget that applies, and settling it.

``admit`` runs in the guard stage once the caller is known: it estimates the request's cost,
takes the key's RPM/TPM tokens, and reserves the estimate on every budget counter (key, team,
task; day and month) in one atomic step. A hard budget that would be passed answers 429
``budget_exceeded``; a soft one switches the request to its ``downgrade_to`` model. ``settle``
runs when the request is finished (the record stage's sink) and replaces the reservation by the
actual cost. Bound: spend never exceeds a hard limit by more than the sum, over the requests
admitted, of what each cost beyond its own estimate. Estimates bound every billable part
(``tokenomy.budgets.cost``), and a request with no known bound is refused under a hard budget,
so that sum is zero unless a provider bills beyond its own published rules.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from tokenomy.budgets.cost import CostModel, Estimate
from tokenomy.budgets.periods import ADJECTIVE, Period, PeriodClock, iso
from tokenomy.budgets.store import BudgetStore, Counter, MemoryBudgetStore, Verdict
from tokenomy.config.budgets import BudgetRule, BudgetsConfig, KeyBudget
from tokenomy.errors import GatewayError
from tokenomy.keys.limits import Bucket, MemoryRateLimiter, RateLimiter
from tokenomy.keys.record import KeyRecord
from tokenomy.pipeline.context import CallContext
from tokenomy.pricing.money import usd
from tokenomy.telemetry import metrics
from tokenomy.telemetry.labels import TaskLabels

log = logging.getLogger("tokenomy.budgets")

_PERIODS: tuple[tuple[Period, str], ...] = (("day", "usd_per_day"), ("month", "usd_per_month"))


@dataclass(slots=True)
class _Open:
    """A request admitted and not settled yet."""

    ctx: CallContext
    key: KeyRecord | None
    counters: list[Counter]
    estimate: Estimate
    reservation: str


def budget_exceeded(counter: Counter, verdict: Verdict, estimate: float) -> GatewayError:
    """429 ``budget_exceeded``: which budget, how much is spent, reserved and needed, and when it resets."""
    limit = counter.hard_usd if counter.hard_usd is not None else 0.0
    message = (
        f"Budget exceeded: {counter.subject} has spent {usd(verdict.spent)} of its {usd(limit)} "
        f"{ADJECTIVE[counter.period]} budget ({usd(verdict.reserved)} more is reserved by requests in progress; "
        f"this request may cost up to {usd(estimate)}). The budget resets at {iso(counter.resets_at)}."
    )
    retry = max(1, math.ceil(counter.resets_at - time.time()))
    headers = {"retry-after": str(retry), "x-should-retry": "false"}
    return GatewayError(429, message, "budget_exceeded", code="budget_exceeded", headers=headers)


def unbounded_under_hard_budget(reason: str) -> GatewayError:
    """400: a request whose cost has no upper bound cannot be admitted under a hard budget."""
    return GatewayError(
        400,
        f"This request falls under a hard budget and {reason}, so its cost has no upper bound; "
        "set max_tokens (or max_completion_tokens) so the gateway can reserve what it may cost.",
        "invalid_request_error",
        param="max_tokens",
        code="max_tokens_required",
    )


class BudgetService:
    """Per-key rate limits and budgets: admission before the request, settlement after."""

    def __init__(
        self,
        config: BudgetsConfig,
        cost: CostModel,
        store: BudgetStore | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.cost = cost
        self.store: BudgetStore = store or MemoryBudgetStore()
        self.limiter: RateLimiter = limiter or MemoryRateLimiter()
        self._rules = config.rules
        self._ttl = config.reservation_ttl_s
        self._sweep_at = time.perf_counter() + 60.0
        self._clock = PeriodClock()
        self._open: dict[int, _Open] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}-{os.urandom(4).hex()}-"
        self._memory = self.store if isinstance(self.store, MemoryBudgetStore) else None
        self._prune_at = 0.0
        # a "*" rule gives each subject its own counter: bound them as the metrics bound task labels
        self._subjects = {
            rule.scope: TaskLabels(config.max_wildcard_subjects) for rule in self._rules if rule.name == "*"
        }

    # -- which budgets apply -------------------------------------------------------------------------

    def counters(self, key: KeyRecord | None, ctx: CallContext) -> list[Counter]:
        """Every budget counter of this request (merged when two budgets count the same spend)."""
        applied: list[tuple[str, str, KeyBudget]] = []
        if key is not None and key.budget is not None:
            applied.append(("key", key.name, key.budget))
        for rule in self._rules:
            subject = _subject(rule, key, ctx)
            if subject is not None:
                if rule.name == "*":
                    subject = self._subjects[rule.scope](subject)  # beyond the limit: "other", shared
                applied.append((rule.scope, subject, rule))
        if not applied:
            return []
        now = time.time()
        if self._memory is not None and now >= self._prune_at:
            self._memory.prune(now)
            self._prune_at = now + 3600
        merged: dict[str, Counter] = {}
        for scope, name, budget in applied:
            for counter in self._counters_of(scope, name, budget, now):
                old = merged.get(counter.key)
                merged[counter.key] = counter if old is None else _merge(old, counter)
        return list(merged.values())

    def _counters_of(self, scope: str, name: str, budget: KeyBudget, now: float) -> list[Counter]:
        out = []
        for period, field in _PERIODS:
            usd = getattr(budget, field)
            if usd is not None:
                pid, resets = self._clock.current(period, now)
                hard = budget.action == "hard"
                out.append(
                    Counter(
                        f"{scope}:{name}:{pid}",
                        f"{scope} {name!r}",
                        period,
                        resets,
                        usd if hard else None,
                        None if hard else usd,
                        budget.downgrade_to,
                    )
                )
        return out

    # -- before the request ----------------------------------------------------------------------

    async def admit(self, ctx: CallContext, key: KeyRecord | None) -> str | None:
        """Take rate limits and reserve the estimate; returns the original model when downgraded."""
        counters = self.counters(key, ctx)
        limited = key is not None and (key.rpm is not None or key.tpm is not None)
        if not counters and not limited:
            return None
        estimate = self.cost.estimate(ctx, ctx.model)
        if not estimate.bounded and any(counter.hard_usd is not None for counter in counters):
            raise unbounded_under_hard_budget(estimate.unbounded_reason)
        if limited:
            assert key is not None
            await self._take_rate(key, estimate.prompt_tokens)
        reservation = self._prefix + str(next(self._ids))
        original: str | None = None
        if counters:
            verdict = await self._reserve(counters, estimate.usd, reservation, True)
            if verdict.status == "soft":
                target = counters[verdict.index].downgrade_to
                if target is not None and target != ctx.model:
                    original, ctx.model = ctx.model, target
                    estimate = self.cost.estimate(ctx, target)
                    metrics.child(metrics.BUDGET_DOWNGRADES, original, target).inc()
                verdict = await self._reserve(counters, estimate.usd, reservation, False)
            if verdict.status == "hard":
                counter = counters[verdict.index]
                metrics.child(metrics.BUDGET_REJECTIONS, counter.key.split(":", 1)[0], counter.period).inc()
                raise budget_exceeded(counter, verdict, estimate.usd)
        self._open[id(ctx)] = _Open(ctx, key, counters, estimate, reservation)
        if ctx.started >= self._sweep_at:
            self._sweep(ctx.started)
        return original

    def _sweep(self, now: float) -> None:
        """Settle requests never finished after ``reservation_ttl_s`` (a stream nobody read), at their estimate."""
        self._sweep_at = now + 60.0
        for held in [h for h in self._open.values() if now - h.ctx.started > self._ttl]:
            log.warning("request %s never finished; its budget counts its estimate", held.ctx.request_id)
            self._open.pop(id(held.ctx), None)
            self._finish(held, held.estimate.usd, held.estimate.prompt_tokens)

    def note_downgrade(self, ctx: CallContext, original: str) -> None:
        """Show a soft-budget downgrade in the ledger: the requested model, the route, and the baseline
        (the requested model's deployment, so the ledger prices what the downgrade saved)."""
        target, ctx.model = ctx.model, original
        ctx.decisions["budget_downgrade"] = {"from": original, "to": target}
        ctx.route = f"budget-downgrade:{original}->{target}" + (f"/{ctx.route}" if ctx.route else "")
        if ctx.baseline_deployment is None and ctx.deployment is not None:
            ctx.baseline_deployment = self.cost.table.resolve(original).deployments[0]

    async def _reserve(self, counters: list[Counter], usd: float, reservation: str, soft: bool) -> Verdict:
        if self._memory is not None:  # no await between the check and the reservation
            return self._memory.reserve_now(counters, usd, reservation, soft)
        verdict: Verdict = await _store_call(self.store.reserve(counters, usd, reservation, soft))
        return verdict

    async def _take_rate(self, key: KeyRecord, prompt_tokens: int) -> None:
        buckets: list[Bucket] = []
        if key.rpm is not None:
            buckets.append(Bucket(f"{key.id}:rpm", key.rpm, 1))
        if key.tpm is not None:
            buckets.append(Bucket(f"{key.id}:tpm", key.tpm, min(prompt_tokens, key.tpm)))
        refusal = await _store_call(self.limiter.take(buckets))
        if refusal is None:
            return
        bucket = buckets[refusal.index]
        kind = bucket.key.rsplit(":", 1)[1]
        unit = "requests" if kind == "rpm" else "tokens"
        raise GatewayError(
            429,
            f"Rate limit reached for key {key.name!r}: {bucket.per_minute} {unit} per minute. "
            f"Retry in {refusal.retry_after_s:.1f} s.",
            unit,
            code="rate_limit_exceeded",
            headers={"retry-after": str(max(1, math.ceil(refusal.retry_after_s)))},
        )

    # -- after the request -------------------------------------------------------------------------

    def settle(self, ctx: CallContext) -> None:
        """Replace the request's reservation by its actual cost; settle its TPM charge to the tokens used."""
        held = self._open.pop(id(ctx), None)
        if held is None:
            return
        try:
            usd, tokens = self.cost.actual(ctx)
        except Exception:  # keep the estimate as the cost rather than lose track of the spend
            log.exception("pricing request %s for its budget failed; counting its estimate", ctx.request_id)
            usd, tokens = held.estimate.usd, held.estimate.prompt_tokens
        self._finish(held, usd, tokens)

    def _finish(self, held: _Open, usd: float, tokens: int) -> None:
        key = held.key
        if key is not None and key.tpm is not None:
            extra = tokens - min(held.estimate.prompt_tokens, key.tpm)  # what admission took
            if extra:
                self._background(self.limiter.charge(Bucket(f"{key.id}:tpm", key.tpm, extra)))
        if not held.counters:
            return
        if self._memory is not None:
            self._memory.settle_now(held.counters, held.estimate.usd, usd, held.reservation)
        else:
            self._background(self.store.settle(held.counters, held.estimate.usd, usd, held.reservation))

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("settling a budget or rate limit failed: %s", task.exception())

    async def drain(self) -> None:
        """Wait for settlements still being sent (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- reporting -----------------------------------------------------------------------------------

    async def status(self, keys: list[KeyRecord]) -> list[dict[str, Any]]:
        """Spend, reservations and limits of the current period of every budget with spend or a key."""
        seen: dict[str, Counter] = {}
        now = time.time()
        budgets = [("key", k.name, k.budget) for k in keys if k.budget is not None]
        budgets += [(rule.scope, rule.name, rule) for rule in self._rules if rule.name != "*"]
        for scope, name, budget in budgets:
            for counter in self._counters_of(scope, name, budget, now):
                old = seen.get(counter.key)
                seen[counter.key] = counter if old is None else _merge(old, counter)
        counters = list(seen.values())
        amounts = await _store_call(self.store.read([c.key for c in counters])) if counters else []
        return [
            {
                "counter": c.key,
                "subject": c.subject,
                "period": c.period,
                "hard_limit_usd": c.hard_usd,
                "soft_limit_usd": c.soft_usd,
                "downgrade_to": c.downgrade_to,
                "spent_usd": spent,
                "reserved_usd": reserved,
                "resets_at": iso(c.resets_at),
            }
            for c, (spent, reserved) in zip(counters, amounts, strict=True)
        ]

    async def close(self) -> None:
        """Finish pending settlements and close the store."""
        await self.drain()
        await self.store.close()


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _merge(old: Counter, new: Counter) -> Counter:
    """Two budgets on the same spend: the lower hard limit, the lower soft limit (and its target)."""
    soft = old if new.soft_usd is None or (old.soft_usd is not None and old.soft_usd <= new.soft_usd) else new
    return Counter(
        old.key,
        old.subject,
        old.period,
        old.resets_at,
        _min(old.hard_usd, new.hard_usd),
        soft.soft_usd,
        soft.downgrade_to,
    )


def _subject(rule: BudgetRule, key: KeyRecord | None, ctx: CallContext) -> str | None:
    """The name this rule counts the request under, or ``None`` when the rule does not apply."""
    if rule.scope == "key":
        value = key.name if key is not None else None
    elif rule.scope == "team":
        value = ctx.tenant
    else:
        value = ctx.task
    if value is None or (rule.name != "*" and rule.name != value):
        return None
    return value


async def _store_call(awaitable: Awaitable[Any]) -> Any:
    """Await a shared store; when it is down the gateway refuses (fails closed) with 503."""
    try:
        return await awaitable
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise _unavailable(exc) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            raise _unavailable(exc) from exc
        raise


def _unavailable(exc: Exception) -> GatewayError:
    return GatewayError(
        503, f"The budget store is unavailable ({exc}); retry shortly.", "server_error", code="budget_store_down"
    )
