"""No secret leaves through error messages (finding 5).

As found: upstream error messages were relayed verbatim, so an upstream that echoes the request
headers it received exposed the gateway's upstream API key in a 400 and a 502 body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.base import FakeServer
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.redaction import MASK, Redactor

# long, key-shaped upstream keys (the shared fakes' keys are short test strings)
OPENAI_SECRET = "sk-proj-Zx81hQ0v9LwM3nB7tY2kR5pD"
ANTHROPIC_SECRET = "sk-ant-api03-Hq7Pz2Lw9Xc4Vb8Nm1Kj6Tr3"
ODD_SECRET = "corp_internal_Y7u2K9p4Q1w8"  # no known key shape: masked because it is configured


def _config(oai: OpenAIFake, ant: AnthropicFake) -> str:
    """Models ``fast`` (OpenAI format) and ``claude`` (Anthropic), each with its long, key-shaped key."""
    return f"""
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{oai.base_url}", api_key: "${{T_UNSET_OAI:-{OPENAI_SECRET}}}",
          model: gpt-4o-mini}}
  - name: claude
    deployments:
      - {{provider: anthropic, base_url: "{ant.base_url}", api_key: "${{T_UNSET_ANT:-{ANTHROPIC_SECRET}}}",
          model: claude-3-5-haiku-latest}}"""


@pytest.fixture(scope="module")
async def leaky() -> AsyncIterator[tuple[RunningGateway, OpenAIFake, AnthropicFake]]:
    from tests.fakes.anthropic_upstream import start_anthropic_fake
    from tests.fakes.openai_upstream import start_openai_fake

    oai: OpenAIFake = await start_openai_fake()  # takes any key: "fast" and "odd" send different ones
    ant: AnthropicFake = await start_anthropic_fake(api_key=ANTHROPIC_SECRET)
    config = (
        _config(oai, ant)
        + f"""
  - name: odd
    deployments:
      - {{provider: openai, base_url: "{oai.base_url}", api_key: "${{T_UNSET_ODD:-{ODD_SECRET}}}", model: gpt-4o-mini}}
"""
    )
    try:
        async with running_gateway(config) as gw:
            yield gw, oai, ant
    finally:
        await oai.close()
        await ant.close()


SECRETS = (OPENAI_SECRET, ANTHROPIC_SECRET, ODD_SECRET)


async def echoed_errors(
    gw: RunningGateway, fake: FakeServer, status: int, model: str, stream: bool
) -> tuple[httpx.Response, httpx.Response]:
    """One request through each endpoint (OpenAI, Anthropic) while ``fake`` answers ``status`` with
    an error that quotes every header it received."""
    body = {"model": model, "max_tokens": 8, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    fake.mode = f"echo_headers_{status}"
    try:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            return await http.post("/v1/chat/completions", json=body), await http.post("/v1/messages", json=body)
    finally:
        fake.mode = "ok"


@pytest.mark.parametrize("model", ["fast", "claude", "odd"])
@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_echoing_its_request_leaks_no_key(
    leaky: tuple[RunningGateway, OpenAIFake, AnthropicFake],
    model: str,
    status: int,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw, oai, ant = leaky
    fake = ant if model == "claude" else oai
    with caplog.at_level(logging.DEBUG, logger="tokenomy"):
        resp, anthropic = await echoed_errors(gw, fake, status, model, stream)
    assert resp.status_code == (400 if status == 400 else 502)
    assert "Received headers" in resp.text, "the upstream's message is still relayed"
    everything = resp.text + str(resp.headers) + anthropic.text + str(anthropic.headers) + caplog.text
    for secret in SECRETS:
        assert secret not in everything
    assert MASK in resp.text


@pytest.mark.parametrize("model", ["fast", "claude"])
async def test_a_rate_limit_echoing_the_key_in_retry_after_leaks_nothing(model: str) -> None:
    """429 is the one upstream answer whose header (``Retry-After``) reaches the client: an upstream
    that puts the credentials it received there (and in its message) leaks nothing either.
    A gateway of its own: the deployment cools down after a 429."""
    from tests.fakes.anthropic_upstream import start_anthropic_fake
    from tests.fakes.openai_upstream import start_openai_fake

    oai: OpenAIFake = await start_openai_fake(mode="echo_headers_429")
    ant: AnthropicFake = await start_anthropic_fake(api_key=ANTHROPIC_SECRET, mode="echo_headers_429")
    config = "routing: {retries: {max_attempts: 1}}" + _config(oai, ant)
    body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
            resp = await http.post("/v1/chat/completions", json=body)
        fake = ant if model == "claude" else oai
        assert any(s in str(fake.requests[-1].headers) for s in (OPENAI_SECRET, ANTHROPIC_SECRET))
    finally:
        await oai.close()
        await ant.close()
    assert resp.status_code == 429 and "retry-after" in resp.headers, resp.text
    for secret in SECRETS:
        assert secret not in resp.text + str(resp.headers)
    assert MASK in resp.headers["retry-after"] and MASK in resp.text


def test_the_redactor_masks_configured_values_and_key_shapes() -> None:
    redact = Redactor()
    redact.add("my-configured-value-123", "", None, "short")
    text = (
        "key my-configured-value-123; Authorization: Bearer abc.def-ghi_jkl; sk-ant-api03-abcdefgh12345; "
        "AKIAABCDEFGHIJKLMNOP; postgresql://user:hunter2@db/x; api_key=zzzzzz9; short stays"
    )
    out = redact(text)
    for leaked in ("my-configured-value-123", "abc.def-ghi_jkl", "sk-ant-api03", "AKIAABCDEF", "hunter2", "zzzzzz9"):
        assert leaked not in out, out
    assert "short stays" in out and "postgresql://user:" in out


def test_the_redactors_shortcut_masks_exactly_what_the_patterns_mask() -> None:
    """Texts are only scanned when they contain a pattern's fixed part; the result is the same."""
    from tokenomy.redaction import _patterns

    redact = Redactor()
    redact.add("my-configured-value-123")
    pieces = [
        "access request_id=req_1 key=- tenant=default prompt_tokens=19 status=200", "Bearer abcdefgh123",
        "bearer  Zyx.987654321", "sk-proj-abcdefghijk", "x-api-key: qwerty123", "API_KEY='hunter22'",
        "Access-Token=abcdef", "passwd: letmein1", "Secret = s3cr3t!!", "https://u:pw12@host/x", "AKIAABCDEFGHIJKLMNOP",
        "AIza" + "a" * 32, "ghp_" + "b" * 32, "xoxb-1234567890ab", "eyJabcdefgh.ijklmnopq.rstuvwxyz",
        "my-configured-value-123", "high thoughts", "authorization", "api\u212aey=abcdef1", "pa\u017fsword=abcdef",
        "Kelvin apiKey=1234",
        "",
    ]  # fmt: skip
    for a in pieces:
        for b in pieces:
            text = f"{a} {b}"
            assert redact(text) == _patterns(text.replace("my-configured-value-123", MASK)), text


def test_the_shared_fakes_keys_are_not_what_this_test_relies_on() -> None:
    assert OPENAI_KEY not in SECRETS and ANTHROPIC_KEY not in SECRETS


def test_log_lines_are_redacted(
    leaky: tuple[RunningGateway, OpenAIFake, AnthropicFake], caplog: pytest.LogCaptureFixture
) -> None:
    """Any log line (message, arguments or traceback) that quotes a configured secret is masked."""
    log = logging.getLogger("tokenomy.test")
    with caplog.at_level(logging.INFO, logger="tokenomy"):
        log.warning("upstream said: %s", f"bad key {ODD_SECRET}")
        try:
            raise ValueError(f"Authorization: Bearer {OPENAI_SECRET}")
        except ValueError:
            log.exception("call failed")
    assert ODD_SECRET not in caplog.text and OPENAI_SECRET not in caplog.text
    assert caplog.text.count(MASK) >= 2
