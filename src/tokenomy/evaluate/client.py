"""Calling models through a Tokenomy gateway for an evaluation, and pricing each call.

Every call is a streamed chat completion (so time to first token is measured) with the cache
bypassed (``Cache-Control: no-cache, no-store``): each figure is a real call. Transient failures
(connection errors, timeouts, 408, 429, 5xx, a stream cut short) pause and retry with backoff, up
to ``max_retries`` times, honouring ``Retry-After``; then the call is an *upstream error*, counted
apart from wrong answers. A 429 with ``Retry-After`` (a deployment's RPM/TPM limit) is pacing, not
failure: it is waited out without counting as a retry, up to ``max_rate_wait_s`` of waiting per
call. Other 4xx answers are *request errors* and are not retried.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.evaluate import EVAL_USER
from tokenomy.pricing.prices import UNPRICED, PriceBook, TokenPrice, lookup

_RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})
NO_CACHE = {"cache-control": "no-cache, no-store"}


@dataclass(slots=True)
class Answer:
    """One call's outcome: the text, its usage, cost, timing and where it was served."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    deployment: str | None = None
    served_model: str | None = None
    request_id: str | None = None
    error: str | None = None
    error_kind: str | None = None  # upstream | request
    attempts: int = 1


class CallFailed(Exception):
    """A call that did not produce an answer; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None, status: int = 0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class Pricer:
    """USD for a call: the served deployment's price from the config (as the gateway's ledger prices
    it), else the price database by the served model's name, else 0 (``price_source`` unknown)."""

    def __init__(self, config: GatewayConfig | None) -> None:
        self._book = PriceBook()
        self._deployments: dict[str, Deployment] = {}
        if config is not None:
            for model in config.models:
                for dep in model.deployments:
                    self._deployments.setdefault(dep.label, dep)
        self._by_name: dict[str, TokenPrice] = {}
        self.unpriced: set[str] = set()

    def cost(self, answer: Answer, started: float, finished: float) -> float:
        """Price ``answer`` (and feed self-hosted throughput meters)."""
        dep = self._deployments.get(answer.deployment or "")
        if dep is not None:
            self._book.observe(dep, answer.prompt_tokens + answer.completion_tokens, started, finished)
            price = self._book.price(dep)
        else:
            name = answer.served_model or ""
            price = self._by_name.get(name) or self._by_name.setdefault(name, lookup(name, "openai") or UNPRICED)
        if price is UNPRICED and not (dep is not None and dep.provider == "local"):  # embedded models are free
            self.unpriced.add(answer.deployment or answer.served_model or "?")
        return price.cost(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)


class GatewayClient:
    """Chat completions against one gateway URL, with retries for transient failures."""

    def __init__(
        self,
        base_url: str,
        pricer: Pricer,
        *,
        api_key: str | None = None,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_rate_wait_s: float = 600.0,
        timeout_s: float = 600.0,
        connections: int = 64,
    ) -> None:
        headers = {**NO_CACHE, **({"authorization": f"Bearer {api_key}"} if api_key else {})}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=limits,
        )
        self.pricer = pricer
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_rate_wait_s = max_rate_wait_s
        self.retries = 0  # transient failures retried, over the whole run

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def models(self) -> list[str]:
        """The model names the gateway serves (``/v1/models``)."""
        resp = await self._http.get("/v1/models")
        resp.raise_for_status()
        return [str(m["id"]) for m in resp.json().get("data", [])]

    async def chat(self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any], task: str) -> Answer:
        """One answer, retrying transient failures; failures end up in ``error``/``error_kind``."""
        attempt = failures = 0
        rate_waited = 0.0
        while True:
            attempt += 1
            try:
                answer = await self._once(model, messages, extra, task)
                answer.attempts = attempt
                return answer
            except CallFailed as exc:
                # a 429 with Retry-After is pacing (a deployment's RPM/TPM): wait it out, up to max_rate_wait_s
                paced = exc.status == 429 and exc.retry_after is not None and rate_waited < self.max_rate_wait_s
                if not paced:
                    failures += 1
                if not exc.retryable or failures > self.max_retries:
                    kind = "upstream" if exc.retryable else "request"
                    return Answer(error=str(exc), error_kind=kind, attempts=attempt)
                self.retries += 1
                if paced:
                    pause = min(exc.retry_after or 0.0, self.max_backoff_s) * random.uniform(1.0, 1.5)
                    rate_waited += pause
                else:
                    pause = min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                    pause = max(pause, min(exc.retry_after or 0.0, self.max_backoff_s))
                await asyncio.sleep(pause)

    async def _once(self, model: str, messages: list[dict[str, Any]], extra: dict[str, Any], task: str) -> Answer:
        body = {
            "user": EVAL_USER,
            **extra,
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        answer = Answer()
        pieces: list[str] = []
        try:
            async with self._http.stream(
                "POST", "/v1/chat/completions", json=body, headers={"x-tokenomy-task": task}
            ) as resp:
                if resp.status_code != 200:
                    raw = await resp.aread()
                    raise _failure(resp.status_code, raw, resp.headers.get("retry-after"))
                answer.deployment = resp.headers.get("x-tokenomy-deployment")
                answer.served_model = resp.headers.get("x-tokenomy-model")
                answer.request_id = resp.headers.get("x-request-id")
                done = False
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        error = chunk["error"] or {}
                        raise CallFailed(f"stream error: {error.get('message', error)}", retryable=True)
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if answer.ttft_ms is None:
                                answer.ttft_ms = (time.perf_counter() - started) * 1000.0
                            pieces.append(piece)
                    usage = chunk.get("usage")
                    if usage:
                        answer.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        answer.completion_tokens = int(usage.get("completion_tokens") or 0)
                        details = usage.get("prompt_tokens_details") or {}
                        answer.cached_tokens = int(details.get("cached_tokens") or 0)
                if not done:
                    raise CallFailed("the stream ended without [DONE]", retryable=True)
        except httpx.TransportError as exc:
            raise CallFailed(f"{type(exc).__name__}: {exc}", retryable=True) from None
        except ValueError as exc:
            raise CallFailed(f"unreadable stream: {exc}", retryable=True) from None
        finished = time.perf_counter()
        answer.text = "".join(pieces)
        answer.latency_ms = (finished - started) * 1000.0
        answer.cost_usd = self.pricer.cost(answer, started, finished)
        return answer


def _failure(status: int, raw: bytes, retry_after: str | None) -> CallFailed:
    try:
        error = json.loads(raw).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = raw[:200].decode(errors="replace")
    after: float | None = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            after = None
    return CallFailed(f"HTTP {status}: {message}", retryable=status in _RETRYABLE, retry_after=after, status=status)
