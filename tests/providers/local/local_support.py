"""Helpers shared by the local-backend tests: configs and call contexts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.pipeline.context import CallContext, Endpoint

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"


def local_config(*models: str, **local: Any) -> GatewayConfig:
    """A config whose logical models are the given embedded models, each on ``provider: local``."""
    return GatewayConfig.model_validate(
        {
            "models": [{"name": m, "deployments": [{"provider": "local", "model": m}]} for m in models],
            "local": local,
        }
    )


def deployment(model: str) -> Deployment:
    """A ``provider: local`` deployment of ``model``."""
    return Deployment(provider="local", model=model)


def context(endpoint: Endpoint, body: dict[str, Any], model: str = CHAT_MODEL) -> CallContext:
    """A call context as the HTTP edge would build it."""
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    return CallContext(
        request_id="req_test",
        endpoint=endpoint,
        body={"model": model, **body},
        model=model,
        stream=stream,
        include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")),
    )


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` until it holds (AssertionError after ``seconds``)."""
    for _ in range(int(seconds / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached in time")


def choose_embedded_variant() -> None:
    """Run the embedded generator's first-start variant check now (cached after the first run).

    A gateway started next then reads the verdict and is ready at once; the check itself can take
    longer than a test gateway waits for readiness on a busy machine.
    """
    from tokenomy.providers.local.generation import LlamaEngine

    engine = LlamaEngine(select_variant=True, n_threads=2)
    engine.load(warm_up=False)
    engine.close()
