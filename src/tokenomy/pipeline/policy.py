"""The ``policy`` stage: router models (``model: "auto"``...) become a real model, or a cascade.

A request for a model name that is not a router passes straight through. For a router:

- ``policy``: the task's policy (``x-tokenomy-task`` / ``metadata.task``, else ``default``) picks
  the cheapest candidate meeting ``min_quality``; baseline: the task's most expensive candidate.
- ``learned``: the trained router picks from the prompt's MiniLM embedding; baseline: the most
  expensive candidate by deployment price.
- ``cascade``: each step is called non-streaming until an answer passes the step's checks; the
  last step's answer is kept when none passes. Rejected attempts (and verifier calls) are added to
  the request's cost (``extra_cost_usd``); baseline: the cascade's most expensive model. A
  streaming client receives the accepted answer replayed as SSE.

The ledger then records the routing saving: the baseline's price minus the served one's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenomy.cache.replay import Assembler, replay
from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.config.policy import (
    CascadeRouterConfig,
    CascadeStep,
    ConfidenceCheck,
    JsonSchemaCheck,
    LearnedRouterConfig,
    LogprobCheck,
    PolicyRouterConfig,
    RegexCheck,
    VerifierCheck,
)
from tokenomy.errors import GatewayError, internal_error, invalid_request
from tokenomy.ledger.language import last_user_text
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.pricing.prices import PriceBook
from tokenomy.providers.local.onnx_threads import Spinning
from tokenomy.routing import cascade as checks
from tokenomy.routing.policy import PolicyRouter, load_policy_file

if TYPE_CHECKING:
    from tokenomy.routing.learned.router import LearnedRouter

log = logging.getLogger("tokenomy.policy")

_TYPICAL = (1000, 250)  # prompt and completion tokens used to rank deployments by price


class PolicyStage:
    """Resolve router model names; run cascades."""

    name = "policy"

    def __init__(self, config: GatewayConfig, prices: PriceBook | None = None) -> None:
        self._deployments = {n: m.deployments[0] for m in config.models for n in (m.name, *m.aliases)}
        self._prices = prices or PriceBook()
        self._policies: dict[str, PolicyRouter] = {}
        self._cascades: dict[str, CascadeRouterConfig] = {}
        self._learned: dict[str, _Learned] = {}
        for router in config.routers:
            if isinstance(router, PolicyRouterConfig):
                policies = load_policy_file(router.policies_file) if router.policies_file else router.inline()
                self._policies[router.name] = PolicyRouter(router.name, policies)
            elif isinstance(router, CascadeRouterConfig):
                self._cascades[router.name] = router
            else:
                self._learned[router.name] = _Learned(router, set(self._deployments), config.server.onnx_spinning)
        self.names = frozenset((*self._policies, *self._cascades, *self._learned))

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        name = ctx.model
        if name not in self.names:
            return await call_next(ctx)
        policy = self._policies.get(name)
        if policy is not None:
            choice = policy.choose(ctx.task)
            route = f"policy:{choice.task}->{choice.chosen.model}"
            return await self._routed(ctx, call_next, choice.chosen.model, choice.baseline.model, route)
        learned = self._learned.get(name)
        if learned is not None:
            model, reason = await learned.choose(ctx)
            ctx.decisions["learned_router"] = reason
            baseline = self._dearest(learned.candidates or [model])
            return await self._routed(ctx, call_next, model, baseline, f"learned:{name}->{model}")
        return await self._cascade(ctx, call_next, self._cascades[name])

    async def _routed(self, ctx: CallContext, call_next: Handler, model: str, baseline: str, route: str) -> Response:
        """Serve with ``model``; the ledger sees the router name, the route and the baseline."""
        router = ctx.model
        ctx.model = model
        try:
            response = await call_next(ctx)
        finally:
            ctx.model = router
        ctx.route = route + (f"/{ctx.route}" if ctx.route else "")
        ctx.baseline_deployment = self._deployments[baseline]
        return response

    def _dearest(self, models: list[str]) -> str:
        """The most expensive model by deployment price (ties: the later one)."""
        return max(reversed(models), key=lambda m: self._prices.price(self._deployments[m]).cost(*_TYPICAL))

    def _cost(self, dep: Deployment | None, usage: Usage | None, cache: str) -> float:
        if dep is None or usage is None or cache.startswith("hit") or cache == "coalesced":
            return 0.0
        return self._prices.price(dep).cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)

    # -- cascades ----------------------------------------------------------------------------

    async def _cascade(self, ctx: CallContext, call_next: Handler, router: CascadeRouterConfig) -> Response:
        if ctx.endpoint is Endpoint.EMBEDDINGS:
            raise invalid_request(f"The cascade {router.name!r} answers chat and completions only.", param="model")
        original, stream, name = ctx.body, ctx.stream, router.name
        attempts: list[dict[str, Any]] = []
        ctx.decisions["cascade"] = attempts
        extra = 0.0
        try:
            for i, step in enumerate(router.steps):
                last = i == len(router.steps) - 1
                self._prepare(ctx, step, original)
                try:
                    body, usage = await _whole(ctx, await call_next(ctx))
                except GatewayError as exc:
                    if last or (exc.status < 500 and exc.status not in (408, 429)):
                        raise
                    attempts.append({"model": step.model, "passed": False, "reason": f"error {exc.status}"})
                    continue
                cost = self._cost(ctx.deployment, usage, ctx.cache)
                verdict, verify_cost = await self._judge(ctx, call_next, step, body, original)
                extra += verify_cost
                attempts.append(
                    {"model": step.model, "passed": verdict.passed, "reason": verdict.reason,
                     "cost_usd": round(cost + verify_cost, 10)}
                )  # fmt: skip
                if verdict.passed or last:
                    break
                extra += cost
        finally:
            ctx.body, ctx.stream, ctx.model = original, stream, name
        ctx.extra_cost_usd += extra
        ctx.usage = usage
        ctx.route = f"cascade:{name}->{step.model}@{i}" + (f"/{ctx.route}" if ctx.route else "")
        ctx.baseline_deployment = self._deployments[self._dearest([s.model for s in router.steps])]
        if original.get("logprobs") is not True:
            body = _without_logprobs(body)
        if stream:
            return Stream(replay(body, ctx.endpoint.value))
        return Completion(body, usage)

    @staticmethod
    def _prepare(ctx: CallContext, step: CascadeStep, original: dict[str, Any]) -> None:
        """A fresh non-streaming attempt on ``step.model`` (with logprobs when a check needs them)."""
        body = {**original, "model": step.model, "stream": False}
        body.pop("stream_options", None)
        if any(isinstance(c, LogprobCheck) for c in step.checks) and ctx.endpoint is Endpoint.CHAT:
            body["logprobs"] = True
        ctx.body, ctx.model, ctx.stream = body, step.model, False
        ctx.native = None  # the steps are judged on chat answers: every provider translates
        ctx.logical_model = ctx.deployment = ctx.served_model = None
        ctx.usage, ctx.route = None, None
        ctx.decisions.pop("confidence", None)  # a student's confidence belongs to its own attempt

    async def _judge(
        self, ctx: CallContext, call_next: Handler, step: CascadeStep, body: dict[str, Any], request: dict[str, Any]
    ) -> tuple[checks.Verdict, float]:
        """All of the step's checks (stopping at the first failure), and what verifier calls cost."""
        spent = 0.0
        reasons: list[str] = []
        for check in step.checks:
            if isinstance(check, LogprobCheck):
                verdict = checks.check_logprob(check, body)
            elif isinstance(check, JsonSchemaCheck):
                verdict = checks.check_json_schema(check, body, request)
            elif isinstance(check, RegexCheck):
                verdict = checks.check_regex(check, body)
            elif isinstance(check, ConfidenceCheck):
                verdict = checks.check_confidence(check, body)
            else:
                verdict, cost = await self._verify(ctx, call_next, check, body, request)
                spent += cost
            reasons.append(verdict.reason)
            if not verdict.passed:
                return checks.Verdict(False, "; ".join(reasons)), spent
        return checks.Verdict(True, "; ".join(reasons) or "no checks"), spent

    async def _verify(
        self, ctx: CallContext, call_next: Handler, check: VerifierCheck, body: dict[str, Any], request: dict[str, Any]
    ) -> tuple[checks.Verdict, float]:
        """Ask the verifier model to grade the answer; its call is priced into the request."""
        messages = checks.grading_messages(request, checks.answer_text(body))
        vctx = CallContext(
            request_id=f"{ctx.request_id}-verify", endpoint=Endpoint.CHAT, model=check.model,
            body={"model": check.model, "messages": messages, "temperature": 0, "max_tokens": 16},
            headers=ctx.headers, wire=ctx.wire, tenant=ctx.tenant, api_key_name=ctx.api_key_name, task=ctx.task,
        )  # fmt: skip
        try:
            graded, usage = await _whole(vctx, await call_next(vctx))
        except GatewayError as exc:
            return checks.Verdict(False, f"verifier: error {exc.status}"), 0.0
        cost = self._cost(vctx.deployment, usage, vctx.cache)
        score = checks.parse_score(checks.answer_text(graded))
        if score is None:
            return checks.Verdict(False, "verifier: no score"), cost
        return checks.Verdict(score >= check.min_score, f"verifier: {score:g} vs min {check.min_score:g}"), cost


async def _whole(ctx: CallContext, response: Response) -> tuple[dict[str, Any], Usage | None]:
    """The response as a whole body and its usage (a stream, should one come back, is assembled)."""
    if isinstance(response, Completion):
        return response.body, response.usage or Usage.from_openai(response.body.get("usage"))
    assembler = Assembler(ctx.endpoint.value)
    try:
        async for chunk in response.chunks:
            assembler.add(chunk)
    finally:
        if response.aclose is not None and not assembler.complete:
            await _maybe_await(response.aclose())
    body = assembler.body()
    return body, Usage.from_openai(body.get("usage"))


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


def _without_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """The body with each choice's ``logprobs`` emptied (added for a check the client did not ask for)."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        return body
    return {**body, "choices": [{**c, "logprobs": None} if isinstance(c, dict) else c for c in choices]}


@dataclass
class _Learned:
    """A ``learned`` router: its file (loaded at start-up) and the MiniLM embedder (loaded on first use)."""

    config: LearnedRouterConfig
    known: set[str]
    spinning: Spinning = "in-run"  # the shared embedder's ONNX threads (server.onnx_spinning)

    def __post_init__(self) -> None:
        from tokenomy.routing.learned.artifact import load_router

        self.router: LearnedRouter = load_router(self.config.router_file)
        unknown = [m for m in (self.config.candidates or self.router.models) if m not in self.known]
        if unknown:
            raise ValueError(f"router {self.config.name!r}: the router file's models {unknown} are not gateway models")
        self.candidates = list(self.config.candidates or self.router.models)
        self._embed: Any = None
        self._lock = asyncio.Lock()

    async def choose(self, ctx: CallContext) -> tuple[str, str]:
        """``(model, reason)`` for the request's prompt."""
        text = last_user_text(ctx.endpoint.value, ctx.body) or ""
        try:
            if self._embed is None:  # shared with the semantic cache: the prompt is embedded once
                from tokenomy.providers.local.shared_embed import shared_embedder

                self._embed = shared_embedder("float32", self.spinning).aembed
            # the tail after a known preamble (the whole prompt when none): shared with the cache then
            vectors = await self._embed(self.router.embedding_texts(text))
            choice = self.router.choose(vectors, text, self.candidates or None, self.config.threshold)
        except Exception:
            log.exception("learned router %s failed", self.config.name)
            raise internal_error() from None
        return choice.model, choice.reason
