"""The collector's full passes run less often while the gateway serves (``server.gc_full_pass_every``)
and as before once it stops."""

from __future__ import annotations

import gc

from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway


async def test_full_passes_are_spaced_while_serving_and_restored_after(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake
) -> None:
    before = gc.get_threshold()
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url, extra_server=", gc_full_pass_every: 77")
    async with running_gateway(config):
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2], "the young and middle passes are left as they were"
        assert full == 77
    assert gc.get_threshold() == before
