"""Shared bits of the balancing/health/limits/retry tests: routing configs and a scripted stand-in
for the rest of the chain (no sockets)."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

from tokenomy.config import GatewayConfig, parse_config
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream
from tokenomy.pipeline.route import ModelTable, RouteStage
from tokenomy.routing.limits import LocalLimiters


def dep(name: str, **extra: Any) -> str:
    """A deployment entry (YAML flow mapping) named ``name`` on a dummy OpenAI-compatible URL."""
    fields = {"provider": "openai", "base_url": f"http://{name}.invalid/v1", "model": "gpt-4o-mini", "name": name}
    fields.update(extra)
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def model(name: str, *deps: str, **extra: str) -> str:
    """A model entry: ``extra`` are YAML values (``strategy="cheapest"``, ``fallbacks="[b]"``)."""
    lines = [f"  - name: {name}"] + [f"    {k}: {v}" for k, v in extra.items()] + ["    deployments:"]
    return "\n".join(lines + [f"      - {d}" for d in deps]) + "\n"


def config(*models: str, routing: str = "") -> GatewayConfig:
    text = "models:\n" + "".join(models)
    if routing:
        text += f"routing: {routing}\n"
    return parse_config(text)


def upstream_error(status: int = 502, code: str = "upstream_error", retry_after: str | None = None) -> GatewayError:
    headers = {"retry-after": retry_after} if retry_after else {}
    return GatewayError(status, f"fake {status}", "upstream_error", code=code, headers=headers)


class Clock:
    """A settable monotonic clock; ``sleep`` advances it (and records the waits)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """The chain after the route stage: per deployment, a queue of outcomes (default ``ok``).

    Outcomes: ``"ok"``, ``"stream"`` (3 chunks), ``"cut"`` (a stream failing after its first chunk),
    a ``GatewayError`` (raised), or ``("stream-error", exc)`` (a stream failing before its first chunk).
    """

    def __init__(self) -> None:
        self.plans: dict[str, deque[Any]] = defaultdict(deque)
        self.calls: list[str] = []
        self.usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}

    def queue(self, deployment: str, *outcomes: Any) -> None:
        self.plans[deployment].extend(outcomes)

    async def __call__(self, ctx: CallContext) -> Response:
        assert ctx.deployment is not None
        label = ctx.deployment.label
        self.calls.append(label)
        plan = self.plans[label]
        outcome = plan.popleft() if plan else ("stream" if ctx.stream else "ok")
        if isinstance(outcome, GatewayError):
            raise outcome
        if outcome == "ok":
            return Completion({"choices": [{"message": {"content": label}}], "usage": self.usage})
        if isinstance(outcome, tuple):
            return Stream(_chunks(label, fail_at=0, error=outcome[1]))
        return Stream(_chunks(label, fail_at=1 if outcome == "cut" else None))


async def _chunks(label: str, fail_at: int | None, error: GatewayError | None = None) -> AsyncIterator[dict[str, Any]]:
    for i in range(3):
        if i == fail_at:
            raise error or upstream_error(502, "upstream_bad_stream")
        yield {"choices": [{"delta": {"content": f"{label}-{i}"}}]}


def stage(cfg: GatewayConfig, clock: Clock | None = None) -> RouteStage:
    clock = clock or Clock()
    return RouteStage(ModelTable(cfg), LocalLimiters(clock), clock=clock, sleep=clock.sleep)


def ctx(name: str, stream: bool = False, **body: Any) -> CallContext:
    payload = {"model": name, "messages": [{"role": "user", "content": "hello"}], **body}
    return CallContext(request_id="r1", endpoint=Endpoint.CHAT, body=payload, model=name, stream=stream)


async def drain(response: Response) -> list[str]:
    """The streamed contents (raises what the stream raises)."""
    assert isinstance(response, Stream)
    return [chunk["choices"][0]["delta"]["content"] async for chunk in response.chunks]
