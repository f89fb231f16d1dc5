"""Tokenomy: an OpenAI/Anthropic-compatible LLM gateway that makes every call cheaper and faster.

The public surface is what this module exports; everything else is internal.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenomy")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+local"

from tokenomy.config import ConfigError, GatewayConfig, load_config, parse_config
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Stream, Usage
from tokenomy.providers.base import Provider, register_provider

__all__ = [
    "CallContext",
    "Completion",
    "ConfigError",
    "Endpoint",
    "GatewayConfig",
    "GatewayError",
    "Provider",
    "Stream",
    "Usage",
    "__version__",
    "load_config",
    "parse_config",
    "register_provider",
]
