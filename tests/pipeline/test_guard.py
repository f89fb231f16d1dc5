"""The guard stage: keys compared by hash, tenant set, model allow-lists."""

from __future__ import annotations

import pytest

from tokenomy.config.models import AuthConfig, VirtualKey
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response
from tokenomy.pipeline.guard import GuardStage, hash_key, presented_key


async def _ok(ctx: CallContext) -> Response:
    return Completion({"tenant": ctx.tenant})


def _ctx(headers: dict[str, str], model: str = "m") -> CallContext:
    return CallContext(request_id="r", endpoint=Endpoint.CHAT, body={}, model=model, headers=headers)


def test_presented_key_reads_both_sdks() -> None:
    assert presented_key({"authorization": "Bearer sk-1"}) == "sk-1"
    assert presented_key({"x-api-key": "sk-2"}) == "sk-2"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None


async def test_open_gateway_passes_everyone() -> None:
    stage = GuardStage(AuthConfig())
    response = await stage(_ctx({}), _ok)
    assert isinstance(response, Completion) and response.body == {"tenant": "default"}


async def test_keys_by_hash_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_B_KEY", "sk-team-b")
    auth = AuthConfig(
        keys=(
            VirtualKey(name="a", sha256=hash_key("sk-team-a"), tenant="team-a", models=("m",)),
            VirtualKey.model_validate({"name": "b", "key": "${TEAM_B_KEY}"}),
        )
    )
    stage = GuardStage(auth)
    ok = await stage(_ctx({"authorization": "Bearer sk-team-a"}), _ok)
    assert isinstance(ok, Completion) and ok.body == {"tenant": "team-a"}
    ok = await stage(_ctx({"x-api-key": "sk-team-b"}, model="other"), _ok)
    assert isinstance(ok, Completion) and ok.body == {"tenant": "b"}
    for headers in ({}, {"authorization": "Bearer wrong"}):
        with pytest.raises(GatewayError) as info:
            await stage(_ctx(headers), _ok)
        assert info.value.status == 401 and info.value.type == "authentication_error"
    with pytest.raises(GatewayError) as info:
        await stage(_ctx({"authorization": "Bearer sk-team-a"}, model="other"), _ok)
    assert info.value.status == 403
