"""Shadow traffic: after a client has its whole answer, a sampled copy of the request goes to a
candidate model in the background, and both answers land in the ledger.

* **Never on the client's path.** The copy is scheduled only once the answer is complete (for a
  stream: after its last chunk), as a separate task; the client's response is never awaited on it.
* **Bounded.** At most :data:`MAX_IN_FLIGHT` copies run at once; a copy that would exceed that is
  dropped, never queued. Each rule stops copying for the rest of the UTC day once its copies have
  cost ``max_usd_per_day`` (priced as the ledger prices them).
* **Apart from production.** The copy skips authentication, key limits, budgets and the cache
  (it is the gateway's own request), is recorded with ``shadow_of`` = the production request id,
  and is left out of reports' spend and of the cost metrics. ``tokenomy report --shadow``
  compares the two answers per task and candidate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tokenomy.config.models import GatewayConfig
from tokenomy.config.shadow import ShadowRule
from tokenomy.errors import GatewayError
from tokenomy.evaluate import EVAL_USER
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.pricing.prices import PriceBook

log = logging.getLogger("tokenomy.shadow")

MAX_IN_FLIGHT = 4
"""Shadow copies running at once per gateway process; more are dropped."""

Submit = Callable[[CallContext], None]


@dataclass(slots=True)
class _RuleState:
    rule: ShadowRule
    day: int = -1
    spent_usd: float = 0.0

    def over_cap(self, now: float) -> bool:
        day = int(now // 86400)
        if day != self.day:
            self.day, self.spent_usd = day, 0.0
        return self.spent_usd >= self.rule.max_usd_per_day


@dataclass(slots=True)
class ShadowCounts:
    """What happened to the copies (for logs and tests)."""

    sent: int = 0
    dropped_busy: int = 0
    dropped_cap: int = 0
    failed: int = 0
    done: int = 0


@dataclass(slots=True)
class ShadowTraffic:
    """The shadow stage (``name = "shadow"``) and the background copies it starts."""

    rules: dict[tuple[str, str], _RuleState]
    submit: Submit  # the ledger writer's submit
    chain: Handler | None = None  # policy + route + dispatch, set once the gateway has built them
    rng: random.Random = field(default_factory=random.Random)
    prices: PriceBook = field(default_factory=PriceBook)
    counts: ShadowCounts = field(default_factory=ShadowCounts)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    name: str = "shadow"

    @classmethod
    def for_config(cls, config: GatewayConfig, submit: Submit) -> ShadowTraffic | None:
        """The stage for ``config.shadow``; ``None`` when there are no rules (nothing on the request path)."""
        if not config.shadow:
            return None
        return cls({(r.task, r.model): _RuleState(r) for r in config.shadow}, submit)

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        response = await call_next(ctx)
        state = self.rules.get((ctx.task, ctx.model))
        if state is None or ctx.endpoint is not Endpoint.CHAT or ctx.body.get("user") == EVAL_USER:
            return response  # no rule, not chat, or an evaluation's own call
        if self.rng.random() >= state.rule.sample:
            return response
        if isinstance(response, Completion):
            asyncio.get_running_loop().call_soon(self._start, ctx, state)  # after the answer is handed over
            return response
        return Stream(self._then_copy(ctx, state, response.chunks), response.aclose)

    async def _then_copy(
        self, ctx: CallContext, state: _RuleState, chunks: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in chunks:
            yield chunk
        self._start(ctx, state)  # the client has had the last chunk

    def _start(self, ctx: CallContext, state: _RuleState) -> None:
        if state.over_cap(time.time()):
            self.counts.dropped_cap += 1
            return
        if len(self._tasks) >= MAX_IN_FLIGHT or self.chain is None:
            self.counts.dropped_busy += 1
            return
        self.counts.sent += 1
        task = asyncio.get_running_loop().create_task(self._copy(ctx, state), name=f"shadow:{ctx.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _copy(self, original: CallContext, state: _RuleState) -> None:
        rule = state.rule
        body = {k: v for k, v in original.body.items() if k not in ("stream", "stream_options")}
        body["model"] = rule.candidate
        ctx = CallContext(
            request_id=f"{original.request_id}-shadow",
            endpoint=Endpoint.CHAT,
            body=body,
            model=rule.candidate,
            headers={"cache-control": "no-cache, no-store"},
            tenant=original.tenant,
            api_key_name=original.api_key_name,
            task=original.task,
            shadow_of=original.request_id,
        )
        try:
            assert self.chain is not None
            response = await self.chain(ctx)
            if isinstance(response, Completion):
                ctx.usage = response.usage or Usage.from_openai(response.body.get("usage"))
                ctx.response_body = response.body
            else:  # not expected (the copy is not streamed), but read it to the end
                async for _ in response.chunks:
                    pass
            if ctx.deployment is not None and ctx.usage is not None:
                price = self.prices.price(ctx.deployment)
                state.spent_usd += price.cost(
                    ctx.usage.prompt_tokens, ctx.usage.completion_tokens, ctx.usage.cached_tokens
                )
            self.counts.done += 1
        except GatewayError as exc:
            ctx.status, ctx.error_type = exc.status, exc.type
            self.counts.failed += 1
        except asyncio.CancelledError:
            ctx.status, ctx.error_type = 499, "shadow_cancelled"
            raise
        except Exception:  # a copy must never disturb the gateway
            log.exception("shadow copy of %s failed", original.request_id)
            ctx.status, ctx.error_type = 500, "shadow_error"
            self.counts.failed += 1
        finally:
            ctx.finished = time.perf_counter()
            self.submit(ctx)

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Wait for the copies in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def close(self) -> None:
        """Cancel the copies still running (their rows record a 499)."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle(1.0)
