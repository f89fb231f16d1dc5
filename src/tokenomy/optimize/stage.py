"""The ``optimize`` stage: send fewer tokens for the same answer (between ``cache`` and ``route``).

Transforms run in this fixed order (each its own module; see docs/token-optimization.md):

1. ``minify_json`` - lossless: JSON text in contents and tool-call arguments, compacted;
2. ``dedupe_system`` - lossless: repeated identical system messages dropped;
3. ``whitespace`` - lossless: trailing spaces and extra blank lines outside code;
4. ``history`` - the middle of a long conversation trimmed to a token budget (opt-in), the dropped
   turns optionally summarized by a configured model;
5. ``few_shot`` - the k demonstrations most similar to the input kept (opt-in);
6. ``compress`` - long contexts compressed around the question (opt-in);
7. ``output_cap`` - ``max_tokens`` set when the client set none (opt-in);
8. ``prompt_cache`` - Anthropic ``cache_control`` breakpoints, placed by the Anthropic provider on
   the request it sends (on by default in ``auto`` mode: it changes nothing the model reads).

The cache stage before this one keys on the request as the client sent it. The ledger's baseline is
that request too: tokens removed here are the ``compression`` lever's saving, and so are the cache
reads of breakpoints placed here. A transform that fails leaves the request as it was (counted in
``tokenomy_optimize_failures_total``, and said in the ``x-tokenomy-optimize-warning`` header).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from tokenomy.config.models import Deployment
from tokenomy.config.optimize import OptimizeConfig
from tokenomy.optimize import (
    compress_context,
    dedupe_system,
    few_shot,
    history,
    minify_json,
    output_cap,
    summary,
    whitespace,
)
from tokenomy.optimize.accounting import MessageTokens
from tokenomy.optimize.prompt_cache import PrefixMemory, PromptCachePlan
from tokenomy.optimize.settings import Settings, base_settings, resolve
from tokenomy.pipeline.chain import Handler
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream
from tokenomy.pipeline.route import ModelTable
from tokenomy.telemetry.metrics import OPTIMIZE_FAILURES as FAILURES
from tokenomy.telemetry.metrics import OPTIMIZE_TRUNCATED as TRUNCATED
from tokenomy.tokens.count import Encode, TokenCounter

log = logging.getLogger("tokenomy.optimize")
_INLINE_COUNT_BYTES = 16_384  # smaller prompts are counted on the event loop (a thread hop costs more)
Embed = Callable[[list[str]], Awaitable[Any]]


class OptimizeStage:
    """Apply the request's transforms, account for what they saved, and say what was done."""

    name = "optimize"

    def __init__(
        self,
        config: OptimizeConfig,
        table: ModelTable,
        embed: Callable[[], Embed] | None = None,
        tasks: Callable[[str], str] = str,
        gguf_path: str | None = None,
        summarize: summary.Summarize | None = None,
    ) -> None:
        self._config = config
        self._table = table
        self._embed = embed
        self._tasks = tasks
        self._counter = TokenCounter()
        self._memory = PrefixMemory()
        self._tokens = MessageTokens()
        self._gguf = gguf_path
        self._summarize = summarize
        self._encoders: dict[str, tuple[Encode, str]] = {}
        self._base: dict[int, Settings] = {}  # per rule (or none): its settings before headers

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Response:
        if ctx.endpoint is not Endpoint.CHAT or not isinstance(ctx.body.get("messages"), list):
            return await call_next(ctx)
        model = self._table.resolve(ctx.model)
        rule = self._config.rule_for(model.name, ctx.task)
        base = self._base.get(id(rule))  # rules live as long as the config: their ids are stable
        if base is None:
            base = self._base[id(rule)] = base_settings(self._config, rule)
        settings = resolve(self._config, rule, ctx.headers, base)
        if not settings.enabled:
            ctx.body = compress_context.strip_marks(ctx.body) or ctx.body  # the mark never goes upstream
            ctx.decisions["optimize"] = "off"
            return await call_next(ctx)
        # A native pass-through (ctx.native, from the protocols work) sends the client's own body to a
        # provider that speaks its wire format, not ctx.body: rewriting ctx.body losslessly would change
        # nothing upstream, and an opt-in transform must then send the translation instead.
        native = getattr(ctx, "native", None) is not None
        if native:
            settings = replace(settings, lossless=False)
        dep = model.deployments[0]  # the tokenizer is loaded only when something needs counting
        applied: list[str] = []
        warnings: list[str] = []
        body = await self._transform(ctx, settings, dep, applied, warnings)
        capped = False
        if settings.max_tokens is not None:
            new = output_cap.apply(body, settings.max_tokens)
            if new is not None:
                body, capped = new, True
                applied.append(output_cap.name)
        body = compress_context.strip_marks(body) or body  # whatever ran, the mark never goes upstream
        if native and body is not ctx.body:
            setattr(ctx, "native", None)  # noqa: B010 - the field comes with the native pass-through
        if settings.prompt_cache != "off" and any(d.provider == "anthropic" for d in model.deployments):
            encode, _source = await self._encoder(dep)
            ctx.prompt_cache = PromptCachePlan(
                settings.prompt_cache, self._config.prompt_cache_min_tokens, encode, self._memory
            )
        said = ",".join(applied) or "none"
        if body is not ctx.body:
            encode, source = await self._encoder(dep)
            try:
                before, after = await self._count(encode, ctx.body["messages"], body["messages"])
            except Exception as exc:  # counting must never stop the request
                warnings.append(_failed("count", exc))
            else:
                if after < before:
                    ctx.removed_prompt_tokens = before - after
                said += f"; tokens={before}->{after}" + ("" if source == "counted" else " approx")
            ctx.body = body
        ctx.decisions["optimize"] = said
        if warnings:
            ctx.decisions["optimize_warning"] = " | ".join(warnings)
        response = await call_next(ctx)
        plan = ctx.prompt_cache
        if plan is not None and plan.placed:  # the provider placed breakpoints on the request it sent
            done = f"prompt_cache({plan.placed})"
            ctx.decisions["optimize"] = (
                done + said.removeprefix("none") if said.startswith("none") else f"{done},{said}"
            )
        if not capped:
            return response
        task = self._tasks(ctx.task)
        if isinstance(response, Completion):
            if output_cap.truncated(response.body):
                TRUNCATED.labels(task).inc()
            return response
        return Stream(_watch_truncation(response.chunks, task), response.aclose)

    async def _with_summary(
        self, ctx: CallContext, body: dict[str, Any], trimmed: history.Trimmed, model: str, warnings: list[str]
    ) -> dict[str, Any]:
        """``body`` with a summary of the dropped turns where they were (unchanged if summarizing fails)."""
        assert self._summarize is not None
        try:
            text = await self._summarize(ctx, model, list(trimmed.removed))
        except Exception as exc:
            warnings.append(_failed(summary.TASK, exc))
            return body
        messages = list(body["messages"])
        messages.insert(trimmed.at, summary.summary_message(text, trimmed.dropped))
        return {**body, "messages": messages}

    async def _count(self, encode: Encode, before: list[Any], after: list[Any]) -> tuple[int, int]:
        """Prompt tokens before and after; long prompts are tokenized on a worker thread (the
        tokenizer releases the GIL), so the event loop keeps serving other requests meanwhile."""

        def both() -> tuple[int, int]:
            return self._tokens.prompt(encode, before), self._tokens.prompt(encode, after)

        if len(orjson.dumps(before)) < _INLINE_COUNT_BYTES:
            return both()
        return await asyncio.to_thread(both)

    async def _encoder(self, dep: Deployment) -> tuple[Encode, str]:
        """The served model's tokenizer (exact where one is available offline), loaded off the event loop once."""
        found = self._encoders.get(dep.label)
        if found is None:
            found = await asyncio.to_thread(self._counter.counter_for, dep.model, dep.provider, self._gguf)
            self._encoders[dep.label] = found
        return found

    async def _transform(
        self, ctx: CallContext, settings: Settings, dep: Deployment, applied: list[str], warnings: list[str]
    ) -> dict[str, Any]:
        body = ctx.body
        if settings.lossless:
            for module in (minify_json, dedupe_system, whitespace):
                body = _guarded(module.name, module.apply, body, applied, warnings)
        if settings.history_budget_tokens is not None:
            encode, _source = await self._encoder(dep)
            try:
                trimmed = history.apply(
                    body,
                    settings.history_budget_tokens,
                    settings.history_keep_last,
                    lambda messages: self._tokens.messages(encode, messages),
                )
            except Exception as exc:
                trimmed = history.Trimmed(None, warning=_failed(history.name, exc))
            if trimmed.warning:
                warnings.append(trimmed.warning)
            if trimmed.body is not None:
                body = trimmed.body
                applied.append(f"history(-{trimmed.dropped} messages)")
                if settings.history_summary_model is not None and self._summarize is not None:
                    body = await self._with_summary(ctx, body, trimmed, settings.history_summary_model, warnings)
        if settings.few_shot_k is not None and self._embed is not None:
            try:
                selected = await few_shot.apply(body, settings.few_shot_k, self._embed())
            except Exception as exc:
                selected = few_shot.Selected(None)
                warnings.append(_failed(few_shot.name, exc))
            if selected.body is not None:
                body = selected.body
                applied.append(f"few_shot({selected.kept}/{selected.found})")
        if settings.compress_ratio is not None:
            try:
                compressed = await asyncio.to_thread(
                    compress_context.apply,
                    body,
                    settings.compress_ratio,
                    settings.compress_method,
                    settings.compress_min_tokens,
                )
            except compress_context.NothingKept as exc:
                compressed = compress_context.Compression(None)
                warnings.append(f"compress skipped: {exc}")
            except Exception as exc:
                compressed = compress_context.Compression(None)
                warnings.append(_failed(compress_context.name, exc))
            if compressed.body is not None and compressed.texts:
                body = compressed.body
                applied.append(f"compress({settings.compress_method} {settings.compress_ratio:g}x)")
        return body


def _guarded(
    name: str,
    fn: Callable[[dict[str, Any]], dict[str, Any] | None],
    body: dict[str, Any],
    applied: list[str],
    warnings: list[str],
) -> dict[str, Any]:
    try:
        new = fn(body)
    except Exception as exc:
        warnings.append(_failed(name, exc))
        return body
    if new is None:
        return body
    applied.append(name)
    return new


def _failed(name: str, exc: Exception) -> str:
    FAILURES.labels(name).inc()
    log.warning("optimize transform %s failed; request passed unchanged: %r", name, exc)
    return f"{name} failed; left unchanged"


async def _watch_truncation(chunks: AsyncIterator[dict[str, Any]], task: str) -> AsyncIterator[dict[str, Any]]:
    async for chunk in chunks:
        if output_cap.truncated(chunk):
            TRUNCATED.labels(task).inc()
        yield chunk
