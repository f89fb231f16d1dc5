"""Fake LLM providers on real loopback HTTP servers, speaking the OpenAI and Anthropic wire protocols."""

from tests.fakes.anthropic_upstream import AnthropicFake, start_anthropic_fake
from tests.fakes.base import FakeServer, Recorded
from tests.fakes.openai_upstream import OpenAIFake, embedding_vector, start_openai_fake

__all__ = [
    "AnthropicFake",
    "FakeServer",
    "OpenAIFake",
    "Recorded",
    "embedding_vector",
    "start_anthropic_fake",
    "start_openai_fake",
]
