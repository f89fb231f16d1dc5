"""Running an evaluation: every item on every model (``repeats`` times), scored, within a budget.

Calls run concurrently (``concurrency`` at a time, asyncio in one process); the gateway applies the
deployments' RPM/TPM limits, and answers a request over them with 429 + ``Retry-After``, which the
client waits out. Items are taken item by item with the models interleaved, so a run stopped early
(budget, Ctrl-C) has measured every model on the same items.

**Budget.** Before each call the runner checks that what is spent, plus a reserve for every call in
flight and this one, stays within ``budget_usd``; the reserve per call is the dearest call seen on
that model so far (until a model's first call finishes, only one of its calls is in flight). So the
run stops *before* it would spend more, not after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenomy.evaluate.client import GatewayClient
from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.results import CallResult, RunDir
from tokenomy.evaluate.scorers.base import Score, ScoreContext, Scorer

Progress = Callable[[int, int, float], None]
"""``(calls done, calls planned, USD spent)``, after each call."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One call to make."""

    item: EvalItem
    model: str
    repeat: int


@dataclass(slots=True)
class RunState:
    """What the run has done so far."""

    results: dict[tuple[str, str, int], CallResult]
    spent_usd: float = 0.0
    stopped: str | None = None  # why the run ended early: "budget"
    made: int = 0  # calls made by this invocation
    reserve: dict[str, float] = field(default_factory=dict)  # dearest call seen per model
    in_flight: dict[str, int] = field(default_factory=dict)


def plan(items: Sequence[EvalItem], models: Sequence[str], repeats: int) -> list[Unit]:
    """Repeat by repeat, item by item, every model on the item before the next item."""
    return [Unit(item, model, r) for r in range(repeats) for item in items for model in models]


class Runner:
    """Runs a plan against a gateway and writes each result to the run directory as it finishes."""

    def __init__(
        self,
        client: GatewayClient,
        scorer: Scorer,
        rundir: RunDir,
        *,
        concurrency: int = 16,
        budget_usd: float | None = None,
        models: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.scorer = scorer
        self.rundir = rundir
        self.concurrency = concurrency
        self.budget_usd = budget_usd
        self.progress = progress
        self.ctx = ScoreContext(ask=self._ask, models=tuple(models))
        self._changed = asyncio.Condition()

    async def run(self, units: Sequence[Unit], done: dict[tuple[str, str, int], CallResult]) -> RunState:
        """Make every call not in ``done``; returns the state (all results, spend, why it stopped)."""
        state = RunState(dict(done), spent_usd=sum(r.cost_usd + r.scorer_cost_usd for r in done.values()))
        for result in done.values():
            state.reserve[result.model] = max(state.reserve.get(result.model, 0.0), result.cost_usd)
        todo = [u for u in units if (u.item.id, u.model, u.repeat) not in done]
        total = len(units)
        queue: asyncio.Queue[Unit] = asyncio.Queue()
        for unit in todo:
            queue.put_nowait(unit)

        async def worker() -> None:
            while not queue.empty() and state.stopped is None:
                unit = queue.get_nowait()
                if not await self._admit(unit.model, state):
                    return
                try:
                    result = await self._call(unit)
                finally:
                    async with self._changed:
                        state.in_flight[unit.model] -= 1
                        self._changed.notify_all()
                state.made += 1
                state.results[(unit.item.id, unit.model, unit.repeat)] = result
                state.spent_usd += result.cost_usd + result.scorer_cost_usd
                if result.score is not None or result.cost_usd:
                    state.reserve[unit.model] = max(state.reserve.get(unit.model, 0.0), result.cost_usd)
                self.rundir.append(result)
                async with self._changed:
                    self._changed.notify_all()
                if self.progress is not None:
                    self.progress(len(state.results), total, state.spent_usd)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(self.concurrency, len(todo))))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            self.rundir.close()
        return state

    async def _admit(self, model: str, state: RunState) -> bool:
        """Wait until the call fits the budget (and any first call of this model has finished)."""
        async with self._changed:
            while True:
                if state.stopped is not None:
                    return False
                flying = state.in_flight.get(model, 0)
                if self.budget_usd is None:
                    break
                known = model in state.reserve
                if not known and flying:
                    await self._changed.wait()  # one probe per model until its cost is known
                    continue
                reserved = sum(state.reserve.get(m, 0.0) * n for m, n in state.in_flight.items())
                if state.spent_usd + reserved + state.reserve.get(model, 0.0) > self.budget_usd:
                    if any(state.in_flight.values()):
                        await self._changed.wait()  # in-flight calls may cost less than reserved
                        continue
                    state.stopped = "budget"
                    self._changed.notify_all()
                    return False
                break
            state.in_flight[model] = state.in_flight.get(model, 0) + 1
            return True

    async def _call(self, unit: Unit) -> CallResult:
        item = unit.item
        answer = await self.client.chat(unit.model, item.messages, item.request, item.task)
        result = CallResult(
            item=item.id,
            model=unit.model,
            repeat=unit.repeat,
            task=item.task,
            answer=answer.text,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost_usd=answer.cost_usd,
            latency_ms=round(answer.latency_ms, 3),
            ttft_ms=None if answer.ttft_ms is None else round(answer.ttft_ms, 3),
            deployment=answer.deployment,
            request_id=answer.request_id,
            attempts=answer.attempts,
            error=answer.error,
            error_kind=answer.error_kind,
        )
        if answer.error is not None:
            return result
        try:
            score: Score = await self.scorer.score(answer.text, item, self.ctx)
        except Exception as exc:  # a crashing scorer marks the item, never the run
            result.error, result.error_kind = f"{type(exc).__name__}: {exc}", "scorer"
            cost = getattr(exc, "cost_usd", 0.0)  # a judge that failed after a paid call says what it cost
            result.scorer_cost_usd = cost if isinstance(cost, float) else 0.0
            return result
        result.score = min(1.0, max(0.0, float(score.value)))
        result.detail = score.detail
        result.scorer_cost_usd = score.cost_usd
        return result

    async def _ask(self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[str, float]:
        """A judge's call through the same gateway; raises when it fails (a scorer error)."""
        answer = await self.client.chat(model, messages, extra, "tokenomy-judge")
        if answer.error is not None:
            raise RuntimeError(f"judge call failed: {answer.error}")
        return answer.text, answer.cost_usd
