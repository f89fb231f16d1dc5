"""``GET /v1/models`` needs a key when keys are on, lists only what the key may use, and says how each is priced."""

from __future__ import annotations

import hashlib

import openai
import pytest
from tests.support.gateway import running_gateway

ALL_KEY, FAST_KEY = "sk-all-models", "sk-fast-only"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


CONFIG = f"""
auth:
  keys:
    - {{name: all, sha256: {sha(ALL_KEY)}}}
    - {{name: fast-only, sha256: {sha(FAST_KEY)}, models: [fast]}}
models:
  - name: fast
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini}}]
  - name: mine
    deployments:
      - {{provider: openai, base_url: "http://127.0.0.1:9/v1", model: my-finetune,
          pricing: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  - name: mystery
    deployments: [{{provider: openai, base_url: "http://127.0.0.1:9/v1", model: no-such-model-anywhere}}]
  - name: embedded
    deployments: [{{provider: local, model: all-minilm-l6-v2}}]
"""


async def test_models_need_a_key_and_follow_its_allow_list() -> None:
    async with running_gateway(CONFIG, wait_ready=False) as gw:
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key="sk-wrong", max_retries=0) as anonymous:
            with pytest.raises(openai.AuthenticationError):
                await anonymous.models.list()
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key=FAST_KEY, max_retries=0) as narrow:
            assert [m.id for m in (await narrow.models.list()).data] == ["fast"]
        async with openai.AsyncOpenAI(base_url=gw.v1, api_key=ALL_KEY, max_retries=0) as wide:
            listed = {m.id: getattr(m, "pricing", None) for m in (await wide.models.list()).data}
    assert listed == {"embedded": "default", "fast": "database", "mine": "configured", "mystery": "unknown"}
