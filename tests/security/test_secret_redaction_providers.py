"""No secret leaves through error messages, for the Gemini, Azure OpenAI and Bedrock providers too
(finding 5; ``test_secret_redaction.py`` covers OpenAI- and Anthropic-format upstreams).

As found: upstream error messages were relayed verbatim, so an upstream that echoes the request
headers it received (its credentials among them) exposed the gateway's upstream key to clients.
Each fake here answers an error that quotes every header it was sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from tests.fakes.azure_upstream import AzureFake, start_azure_fake
from tests.fakes.base import FakeServer
from tests.fakes.bedrock_upstream import API_KEY as BEDROCK_KEY
from tests.fakes.bedrock_upstream import start_bedrock_fake
from tests.fakes.gemini_upstream import start_gemini_fake
from tests.security.test_secret_redaction import echoed_errors
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.redaction import MASK

GEMINI_SECRET = "AIzaSyD4kR9fLw2Qx7Vb1Nm3Hj8Tc5Pz0Yg6Us"  # the shape of a Google API key
AZURE_SECRET = "3f9c2a7be41d4e0c9b8a6f5e2d1c0b9a"  # Azure keys have no telling shape: masked because configured
SECRETS = (GEMINI_SECRET, AZURE_SECRET, BEDROCK_KEY)


@pytest.fixture(scope="module")
async def leaky() -> AsyncIterator[tuple[RunningGateway, dict[str, FakeServer]]]:
    gemini = await start_gemini_fake(api_key=GEMINI_SECRET)
    azure: AzureFake = await start_azure_fake(api_key=AZURE_SECRET)
    bedrock = await start_bedrock_fake(region="eu-west-1")
    config = f"""
models:
  - name: gem
    deployments: [{{provider: gemini, base_url: "{gemini.base_url}", model: gemini-2.0-flash,
                   api_key: "${{T_UNSET_GEM:-{GEMINI_SECRET}}}"}}]
  - name: az
    deployments: [{{provider: azure, base_url: "{azure.url}", model: gpt-4o-mini,
                   api_key: "${{T_UNSET_AZ:-{AZURE_SECRET}}}"}}]
  - name: br
    deployments: [{{provider: bedrock, region: eu-west-1, base_url: "{bedrock.url}",
                   model: "anthropic.claude-3-haiku-20240307-v1:0", api_key: "${{T_UNSET_BR:-{BEDROCK_KEY}}}"}}]
"""
    try:
        async with running_gateway(config) as gw:
            yield gw, {"gem": gemini, "az": azure, "br": bedrock}
    finally:
        for fake in (gemini, azure, bedrock):
            await fake.close()


@pytest.mark.parametrize("model", ["gem", "az", "br"])
@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_echoing_its_request_leaks_no_key(
    leaky: tuple[RunningGateway, dict[str, FakeServer]],
    model: str,
    status: int,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw, fakes = leaky
    fake = fakes[model]
    with caplog.at_level(logging.DEBUG, logger="tokenomy"):
        resp, anthropic = await echoed_errors(gw, fake, status, model, stream)
    received = fake.requests[-1].headers
    assert any(secret in str(received) for secret in SECRETS), "the upstream did receive the key it then echoed"
    assert resp.status_code == (400 if status == 400 else 502), resp.text
    assert anthropic.status_code >= 400
    everything = resp.text + str(resp.headers) + anthropic.text + str(anthropic.headers) + caplog.text
    for secret in SECRETS:
        assert secret not in everything
    if model != "br":  # Bedrock's errors are {"message": ...}: its text is not relayed at all
        assert "Received headers" in resp.text and MASK in resp.text, "the upstream's message is still relayed"
