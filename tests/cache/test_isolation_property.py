"""Property: a cached answer or value reaches another tenant only through a declared shared namespace.

Hypothesis drives random sequences of requests through a real gateway, from four virtual keys
(two of them one tenant, one with no tenant field: its tenant is its name), in random namespaces,
with random prompts (chat, exact tier) and random keys and values (the ``/v1/cache`` API). A model
of what each scope should hold predicts every outcome: a hit exactly when the same scope stored
that request or key before, with the same content.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

KEYS = {"sk-a1": "team-a", "sk-a2": "team-a", "sk-b": "team-b", "sk-c": "solo"}
NAMESPACES = ("", "x", "y", "pub")  # "" is the request's default namespace; pub is shared
SHARED = {"pub"}

Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("chat"), st.sampled_from(list(KEYS)), st.sampled_from(NAMESPACES), st.integers(0, 2)),
        st.tuples(
            st.just("put"), st.sampled_from(list(KEYS)), st.sampled_from(NAMESPACES[1:]), st.integers(0, 2),
            st.binary(min_size=0, max_size=16),
        ),
        st.tuples(st.just("get"), st.sampled_from(list(KEYS)), st.sampled_from(NAMESPACES[1:]), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=12,
)  # fmt: skip


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    home: Path = tmp_path_factory.mktemp("isolation")
    keys = "\n".join(
        f'    - {{name: key{i}, key: "${{T_ISO_{i}:-{key}}}"{", tenant: " + tenant if tenant != "solo" else ""}}}'
        for i, (key, tenant) in enumerate(KEYS.items())
    )
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url) + (
        f"auth:\n  keys:\n{keys}\n"
        f'cache:\n  exact: {{path: "{home / "cache.db"}"}}\n  shared_namespaces: [pub]\nledger: {{enabled: false}}\n'
    )
    async with running_gateway(config) as running:
        yield running


def scope(key: str, namespace: str) -> tuple[str, ...]:
    """Who shares entries: everyone in a shared namespace, else one tenant's namespace."""
    tenant = KEYS[key] if KEYS[key] != "solo" else "key3"
    return ("shared", namespace) if namespace in SHARED else ("tenant", tenant, namespace)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
async def test_entries_never_cross_tenants_outside_shared_namespaces(gw: RunningGateway, sequence: list[Op]) -> None:
    run = uuid.uuid4().hex  # fresh prompts and keys for each example
    answers: dict[tuple[Any, ...], str] = {}
    values: dict[tuple[Any, ...], bytes] = {}
    async with httpx.AsyncClient(base_url=gw.v1) as http:
        for op in sequence:
            kind, key, namespace, item = op[:4]
            headers = {"authorization": f"Bearer {key}"}
            where = (*scope(key, namespace), item)
            if kind == "chat":
                if namespace:
                    headers["x-tokenomy-cache-namespace"] = namespace
                body = {"model": "fast", "temperature": 0, "messages": [{"role": "user", "content": f"{run} {item}"}]}
                resp = await http.post("/chat/completions", json=body, headers=headers)
                assert resp.status_code == 200
                content = resp.json()["choices"][0]["message"]["content"]
                outcome = resp.headers["x-tokenomy-cache"]
                assert outcome == ("hit-exact" if where in answers else "miss"), (op, outcome)
                assert answers.setdefault(where, content) == content
            elif kind == "put":
                resp = await http.put(f"/cache/{namespace}/{run}-{item}", content=op[4], headers=headers)
                assert resp.status_code == 200
                values[where] = op[4]
            else:
                resp = await http.get(f"/cache/{namespace}/{run}-{item}", headers=headers)
                if where in values:
                    assert resp.status_code == 200 and resp.content == values[where], op
                else:
                    assert resp.status_code == 404 and resp.headers["x-tokenomy-cache"] == "miss", op
