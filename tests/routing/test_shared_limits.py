"""Per-deployment RPM limits shared through a real Redis by two gateways."""

from __future__ import annotations

import os
import uuid
from typing import Any

import openai
import pytest
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway


def config(fake: OpenAIFake, store: str, model: str) -> str:
    return f"""
cache: {{exact: {{enabled: false}}}}
routing: {{limits: {{store: {store}, redis_url: "${{T_LIMITS_REDIS_URL}}", max_wait_ms: 0}}}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}", model: {model}, rpm: 2}}
"""


async def ask(url: str) -> int:
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    try:
        await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_two_gateways_share_a_deployment_rpm_in_redis(
    openai_fake: OpenAIFake, redis_server: Any, store: str
) -> None:
    os.environ["T_LIMITS_REDIS_URL"] = redis_server.url
    model = f"m-{uuid.uuid4().hex[:8]}"  # a fresh bucket key per run
    async with (
        running_gateway(config(openai_fake, store, model)) as a,
        running_gateway(config(openai_fake, store, model)) as b,
    ):
        statuses = [await ask(a.v1), await ask(a.v1), await ask(b.v1)]
    if store == "redis":
        assert statuses == [200, 200, 429]  # the third request of the minute, whichever gateway it reaches
    else:
        assert statuses == [200, 200, 200]  # in process: each gateway has its own bucket


async def test_redis_down_lets_requests_through(openai_fake: OpenAIFake, redis_server: Any) -> None:
    os.environ["T_LIMITS_REDIS_URL"] = redis_server.url
    async with running_gateway(config(openai_fake, "redis", f"m-{uuid.uuid4().hex[:8]}")) as gw:
        redis_server.stop()
        try:
            assert await ask(gw.v1) == 200
        finally:
            redis_server.start()
