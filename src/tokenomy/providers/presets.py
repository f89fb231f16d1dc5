"""Presets for OpenAI-compatible hosts: ``provider: groq`` needs no ``base_url``.

Each preset is the OpenAI provider with the host's default base URL (self-hosted servers on
their usual local port) and its known quirks (Mistral refuses ``stream_options`` and reports
stream usage on its own); everything else (``Authorization: Bearer`` with ``api_key`` when one
is given, streaming with usage, error mapping) is the OpenAI provider's. Responses API calls are
translated to chat completions for these hosts (``/responses`` is OpenAI's own). A ``base_url``
in the config wins over the preset's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.providers.openai.provider import OpenAIProvider


@dataclass(frozen=True, slots=True)
class Preset:
    """A host's defaults."""

    base_url: str
    hosted: bool  # a hosted service (an api_key is needed) rather than a server you run
    stream_options: bool = True  # False: the host refuses ``stream_options`` (and reports usage by itself)


PRESETS: dict[str, Preset] = {
    "groq": Preset("https://api.groq.com/openai/v1", True),
    "together": Preset("https://api.together.xyz/v1", True),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1", True),
    "mistral": Preset("https://api.mistral.ai/v1", True, stream_options=False),  # 422 extra_forbidden otherwise
    "deepseek": Preset("https://api.deepseek.com/v1", True),
    "openrouter": Preset("https://openrouter.ai/api/v1", True),
    "ollama": Preset("http://127.0.0.1:11434/v1", False),
    "vllm": Preset("http://127.0.0.1:8000/v1", False),
    "sglang": Preset("http://127.0.0.1:30000/v1", False),
    "tgi": Preset("http://127.0.0.1:8080/v1", False),
    "lmstudio": Preset("http://127.0.0.1:1234/v1", False),
}

_NOTHING: frozenset[str] = frozenset()


class PresetProvider(OpenAIProvider):
    """The OpenAI provider with a host's default base URL."""

    def __init__(self, config: GatewayConfig, preset: Preset) -> None:
        super().__init__(config)
        self.preset = preset
        self.stream_options = preset.stream_options

    def url(self, deployment: Deployment, path: str) -> str:
        """The deployment's ``base_url`` or the preset's, then ``path``."""
        return f"{deployment.base_url or self.preset.base_url}{path}"

    def native_wires(self, deployment: Deployment) -> frozenset[str]:
        """None: Responses API calls are translated to chat completions."""
        return _NOTHING


def __getattr__(name: str) -> Any:
    """``tokenomy.providers.presets:groq`` and friends: the provider factory of each preset."""
    preset = PRESETS.get(name)
    if preset is None:
        raise AttributeError(name)
    return lambda config: PresetProvider(config, preset)
