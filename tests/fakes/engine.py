"""A fake serving engine (an OpenAI-compatible server such as vLLM) with known timings.

It streams one token per SSE chunk: the first after ``first_token_s``, then one every
``token_interval_s``, each sent at an absolute deadline from the request's arrival (so sleep
jitter does not accumulate). A request gets ``max_tokens`` tokens (default 16). Models other than
``models`` answer 404 ``model_not_found`` like vLLM; ``stream=False`` (or ``streams=False`` on the
fake) answers one JSON body.

Run it alone (for ``bench/planning``): ``python -m tests.fakes.engine --port 8011``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any, Self

from aiohttp import web

_ENGINE_KEY = web.AppKey("engine", object)


class FakeEngine:
    """An engine on ``127.0.0.1``; ``url``/``base_url`` once started; ``requests`` counts arrivals."""

    def __init__(
        self,
        *,
        first_token_s: float = 0.2,
        token_interval_s: float = 0.02,
        models: tuple[str, ...] = ("fake-llm",),
        streams: bool = True,
        port: int = 0,
    ) -> None:
        self.first_token_s = first_token_s
        self.token_interval_s = token_interval_s
        self.models = models
        self.streams = streams
        self.port = port
        self.requests = 0
        self.max_tokens_seen: list[int] = []
        self.first_token_lateness_s: list[float] = []  # when each first token was really written, past its deadline
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return self.url + "/v1"

    async def start(self) -> Self:
        """Bind the port and serve."""
        app = web.Application()
        app[_ENGINE_KEY] = self
        app.router.add_post("/v1/chat/completions", _complete)
        app.router.add_post("/v1/completions", _complete)
        app.router.add_get("/v1/models", _models)
        app.router.add_get("/fake/stats", _stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, backlog=4096).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def _models(request: web.Request) -> web.Response:
    engine: Any = request.app[_ENGINE_KEY]
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in engine.models]
    return web.json_response({"object": "list", "data": data})


async def _stats(request: web.Request) -> web.Response:
    engine: Any = request.app[_ENGINE_KEY]
    late = sorted(engine.first_token_lateness_s)
    p50 = late[len(late) // 2] * 1000 if late else None
    engine.first_token_lateness_s.clear()  # each read covers the requests since the last one
    return web.json_response({"requests": engine.requests, "first_token_lateness_ms_p50": p50})


async def _complete(request: web.Request) -> web.StreamResponse:
    clock = time.perf_counter  # not loop.time(): uvloop's clock has millisecond steps
    arrived = clock()
    engine: Any = request.app[_ENGINE_KEY]
    engine.requests += 1
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body is not JSON", "BadRequestError")
    model = body.get("model")
    if model not in engine.models:
        return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model_not_found")
    chat = request.path.endswith("/chat/completions")
    n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
    engine.max_tokens_seen.append(n)
    prompt = body.get("messages") if chat else body.get("prompt")
    prompt_tokens = len(json.dumps(prompt).split())
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
    if not (body.get("stream") is True and engine.streams):
        await asyncio.sleep(engine.first_token_s + engine.token_interval_s * (n - 1))
        text = " ".join(f"t{i}" for i in range(n))
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        return web.json_response({"id": "cmpl-fake", "object": "chat.completion", "choices": [choice], "usage": usage})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    kind = "chat.completion.chunk" if chat else "text_completion"
    for i in range(n):
        deadline = arrived + engine.first_token_s + i * engine.token_interval_s
        delay = deadline - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        piece = f" t{i}" if i else "t0"
        choice = {"index": 0, "finish_reason": "length" if i == n - 1 else None}
        choice.update({"delta": {"content": piece}} if chat else {"text": piece})
        chunk = {"id": "cmpl-fake", "object": kind, "created": int(time.time()), "model": model, "choices": [choice]}
        if i == 0:
            engine.first_token_lateness_s.append(clock() - deadline)
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        tail = {"id": "cmpl-fake", "object": kind, "model": model, "choices": [], "usage": usage}
        await response.write(b"data: " + json.dumps(tail).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _serve(args: argparse.Namespace) -> None:
    engine = await FakeEngine(
        first_token_s=args.ttft_ms / 1000, token_interval_s=args.itl_ms / 1000, port=args.port, models=(args.model,)
    ).start()
    print(engine.url, flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Serve until killed; prints the URL on the first line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=200.0)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--model", default="fake-llm", help="the model name it serves")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args))
    except KeyboardInterrupt:  # pragma: no cover
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
