"""No secret leaves through a provider batch's error messages (finding 5, for ``/v1/batches``).

Batches for models in ``batches.provider_models`` run on the provider's own batch API, and a failed
request's error comes back in the batch's error file. Here the provider quotes the headers it
received (the gateway's key among them) in that error, for OpenAI's Batch API and Anthropic's
Message Batches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.batches.test_batch_api import lines_of
from tests.batches.test_provider_batches import run_batch
from tests.fakes.batch_upstreams import (
    AnthropicBatchFake,
    OpenAIBatchFake,
    provider_batch_config,
    start_anthropic_batch_fake,
    start_openai_batch_fake,
)
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.redaction import MASK

OPENAI_SECRET = "sk-proj-Bt5rW2nQ8xLc4Vz7Hk1Mp9Dy"
ANTHROPIC_SECRET = "sk-ant-api03-Rf3Gd8Ks2Lq7Wm5Xn9Bc1Vt4"


@pytest.fixture
async def leaky(tmp_path: Path) -> AsyncIterator[tuple[RunningGateway, OpenAIBatchFake, AnthropicBatchFake]]:
    oa = await start_openai_batch_fake(api_key=OPENAI_SECRET)
    an = await start_anthropic_batch_fake(api_key=ANTHROPIC_SECRET)
    config = provider_batch_config(tmp_path / "b", oa, an, OPENAI_SECRET, ANTHROPIC_SECRET)
    try:
        async with running_gateway(config) as gw:
            yield gw, oa, an
    finally:
        await oa.close()
        await an.close()


@pytest.mark.parametrize("model", ["gpt-batch", "claude-batch"])
async def test_a_provider_quoting_its_credentials_in_a_batch_error_leaks_no_key(
    leaky: tuple[RunningGateway, OpenAIBatchFake, AnthropicBatchFake], model: str, caplog: pytest.LogCaptureFixture
) -> None:
    gw, _oa, _an = leaky
    with caplog.at_level(logging.DEBUG, logger="tokenomy"):
        oai, done = await run_batch(gw, model, ["alpha beta", "please FAIL and ECHO"])
        errors = await lines_of(oai, done.error_file_id)
    assert done.status == "completed" and [line["custom_id"] for line in errors] == ["q1"]
    text = str(errors) + str(done) + caplog.text
    assert "received headers" in text, "the provider's message is still relayed"
    assert OPENAI_SECRET not in text and ANTHROPIC_SECRET not in text
    assert MASK in str(errors)
