"""A logical model's deployments as routing sees them, and the choice of one for an attempt.

Built once at start-up from the configuration: each deployment becomes a :class:`Slot` (its
statistics, health and limiter), each logical model a :class:`Pool`, and each model's fallback
chain a :class:`Plan`. The request path then only reads attributes and calls the balancer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tokenomy.config.models import Deployment, GatewayConfig, LogicalModel
from tokenomy.routing.balancer import Balancer, balancer_for
from tokenomy.routing.fallback import fallback_chain
from tokenomy.routing.health import CircuitState, Degraded, Health
from tokenomy.routing.limits import Limiter, LimiterFactory, LocalLimiters
from tokenomy.routing.retry import Backoff
from tokenomy.routing.stats import DeploymentStats
from tokenomy.telemetry import metrics

log = logging.getLogger("tokenomy.routing")


@dataclass(slots=True, eq=False)
class Slot:
    """One deployment of one logical model, with its live state."""

    deployment: Deployment
    label: str
    weight: float
    stats: DeploymentStats
    health: Health
    limiter: Limiter | None
    tpm: bool  # the limiter has a TPM bucket (so requests must be charged tokens)
    price: float = 0.0  # USD per input + output token; only the cheapest strategy reads it
    ok: int = 0  # successful attempts (tokenomy_route_attempts reads these at scrape time)
    failed: dict[str, int] = field(default_factory=dict)  # failed attempts by outcome


Taken = tuple[Slot | None, float, str]  # (deployment, seconds to wait, why none: one of the reasons below)
EXHAUSTED = "exhausted"  # every deployment was tried (and re-tries are off)
UNHEALTHY = "unhealthy"  # circuits open or cooling down
LIMITED = "limited"  # at their RPM/TPM limits


class Pool:
    """The deployments of one logical model, its strategy and its retry policy."""

    def __init__(self, model: LogicalModel, slots: tuple[Slot, ...], degraded: Degraded, config: GatewayConfig) -> None:
        self.model = model
        self.slots = slots
        self.degraded = degraded
        self.balancer: Balancer = balancer_for(model.strategy, slots)
        self.route_name = self.balancer.name if len(slots) > 1 else "single"
        retries = model.retries or config.routing.retries
        self.max_attempts = retries.max_attempts
        self.repeat = retries.retry_same_deployment
        self.backoff = Backoff(retries)
        self.limited = any(slot.limiter is not None for slot in slots)
        self.tpm = any(slot.tpm for slot in slots)
        metrics.ROUTE_ATTEMPTS.attach(self)

    def attempt_counts(self) -> Iterator[tuple[str, str, int]]:
        """``(deployment, outcome, count)`` for the attempts metric."""
        for slot in self.slots:
            yield slot.label, "ok", slot.ok
            for outcome, count in slot.failed.items():
                yield slot.label, outcome, count

    def usable(self, now: float, avoid: Sequence[Slot], gated: bool) -> Sequence[Slot]:
        """The deployments a request may go to now: not tried yet (``avoid``), unless re-tries are allowed
        and none is left; healthy ones only when ``gated``."""
        slots: Sequence[Slot] = self.slots
        if gated and self.degraded.count:
            closed = CircuitState.CLOSED
            healthy = [
                slot for slot in slots if ((h := slot.health).state is closed and not h.cool_until) or h.usable(now)
            ]
            if len(healthy) < len(slots):
                slots = healthy
        if avoid:
            fresh = [slot for slot in slots if slot not in avoid]
            if fresh or not self.repeat:
                return fresh
        return slots

    def choose(self, now: float, avoid: Sequence[Slot], stream: bool, gated: bool) -> Taken:
        """A deployment for the next attempt; or ``None``, the seconds until one may be, and why not.

        Health gates first attempts only when ``gated`` (the plan has an alternative: a model with one
        deployment and no fallback sends there whatever its health); re-tries are always gated. Rate
        limits are not looked at: pools with limits use :meth:`take`.
        """
        candidates = self.usable(now, avoid, gated or bool(avoid))
        if not candidates:
            return self._blocked(now, avoid)
        return (self.balancer.pick(candidates, stream) if len(candidates) > 1 else candidates[0]), 0.0, ""

    async def take(self, now: float, avoid: Sequence[Slot], tokens: int, stream: bool, gated: bool) -> Taken:
        """Like :meth:`choose`, also taking one request and ``tokens`` tokens from the deployment's limiter;
        a deployment at its limit is passed over for another one."""
        candidates = self.usable(now, avoid, gated or bool(avoid))
        if not candidates:
            return self._blocked(now, avoid)
        pick = self.balancer.pick
        wait = math.inf
        while candidates:
            slot = pick(candidates, stream) if len(candidates) > 1 else candidates[0]
            if slot.limiter is None:
                return slot, 0.0, ""
            needed = await slot.limiter.acquire(tokens if slot.tpm else 0)
            if needed <= 0.0:
                return slot, 0.0, ""
            wait = min(wait, needed)
            candidates = [other for other in candidates if other is not slot]
        return None, wait, LIMITED

    def _blocked(self, now: float, avoid: Sequence[Slot]) -> Taken:
        waiting = [slot for slot in self.slots if self.repeat or slot not in avoid]
        if not waiting:
            return None, math.inf, EXHAUSTED
        return None, min(slot.health.ready_in(now) for slot in waiting), UNHEALTHY


@dataclass(frozen=True, slots=True)
class Plan:
    """The pools a request for one model may be served by, in order (the model, then its fallbacks)."""

    pools: tuple[Pool, ...]
    count_tokens: bool  # a TPM limit or a context-window fallback needs the prompt's token count
    gated: bool  # more than one deployment in all: health decides where first attempts go


def build_plans(
    config: GatewayConfig, limiters: LimiterFactory | None = None, clock: Callable[[], float] = time.monotonic
) -> dict[str, Plan]:
    """Every logical model's plan, keyed by its name."""
    factory = limiters or LocalLimiters(clock)
    pools = {model.name: _pool(model, config, factory) for model in config.models}
    by_name = {name: model for model in config.models for name in (model.name, *model.aliases)}
    plans: dict[str, Plan] = {}
    for model in config.models:
        chain = tuple(pools[m.name] for m in fallback_chain(model, by_name))
        needs = model.context_window_fallback is not None or any(pool.tpm for pool in chain)
        plans[model.name] = Plan(chain, needs, sum(len(pool.slots) for pool in chain) > 1)
    return plans


def _pool(model: LogicalModel, config: GatewayConfig, limiters: LimiterFactory) -> Pool:
    degraded = Degraded()
    slots = tuple(_slot(dep, config, limiters, degraded) for dep in model.deployments)
    if model.strategy == "cheapest":
        from tokenomy.pricing.prices import PriceBook

        book = PriceBook()
        for slot in slots:
            price = book.price(slot.deployment)
            known = price.source != "unknown" or slot.deployment.provider == "local"
            slot.price = price.input + price.output if known else math.inf
    return Pool(model, slots, degraded, config)


def _slot(dep: Deployment, config: GatewayConfig, limiters: LimiterFactory, degraded: Degraded) -> Slot:
    label = dep.label
    gauge = metrics.CIRCUIT_STATE.labels(label)
    gauge.set(CircuitState.CLOSED)

    last = [CircuitState.CLOSED]

    def on_state(state: CircuitState) -> None:
        gauge.set(state)
        if state is not last[0]:
            _log_circuit(label, last[0], state, config.routing.health.cooldown_s)
            last[0] = state

    limiter = None
    if dep.rpm or dep.tpm:
        key_env = dep.api_key.env if dep.api_key is not None else ""
        limiter = limiters.limiter(f"{label}|{dep.base_url}|{key_env}", dep.rpm, dep.tpm)
    return Slot(
        deployment=dep,
        label=label,
        weight=dep.weight,
        stats=DeploymentStats(),
        health=Health(config.routing.health, degraded, on_state),
        limiter=limiter,
        tpm=bool(dep.tpm),
    )


def _log_circuit(label: str, was: CircuitState, now: CircuitState, cooldown_s: float) -> None:
    """A WARNING when a deployment's circuit opens, INFO when it probes or closes again."""
    if now is CircuitState.OPEN:
        log.warning(
            "circuit of deployment %s opened (was %s): no requests for %.0f s", label, was.name.lower(), cooldown_s
        )
    else:
        log.info(
            "circuit of deployment %s is now %s (was %s)", label, now.name.lower().replace("_", "-"), was.name.lower()
        )
