"""The provider interface and the registry through which providers are found.

A provider speaks one wire protocol. It receives the call context (its ``body`` is the
OpenAI-shaped request of ``ctx.endpoint``) and the chosen deployment, and returns a
:class:`~tokenomy.pipeline.context.Completion` or :class:`~tokenomy.pipeline.context.Stream`
in the OpenAI shape. Built-in providers register themselves exactly as a plugin would.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenomy.config.models import Deployment, GatewayConfig
    from tokenomy.pipeline.context import CallContext, Response


class Provider(Protocol):
    """One wire protocol (or the embedded backend)."""

    async def start(self) -> None:
        """Open pools or load models; called once before serving."""

    async def close(self) -> None:
        """Release pools and models."""

    def ready(self) -> bool:
        """True once the provider can serve (models loaded)."""

    async def send(self, ctx: CallContext, deployment: Deployment) -> Response:
        """Serve one request on ``deployment``; raise ``GatewayError`` on failure."""


def speaks_natively(provider: object, wire: str, deployment: Deployment) -> bool:
    """Whether ``provider`` takes requests of ``wire`` untranslated on ``deployment``.

    Optional provider interface: ``native_wires(deployment) -> frozenset[str]`` and
    ``async send_native(ctx, deployment)``; the answer is then in that wire's own shape (a
    Responses API object or events, an Anthropic message or events) instead of the OpenAI one.
    """
    wires = getattr(provider, "native_wires", None)
    return wires is not None and wire in wires(deployment)


ProviderFactory = Callable[["GatewayConfig"], Provider]

_REGISTRY: dict[str, ProviderFactory] = {}


def register_provider(kind: str, factory: ProviderFactory) -> None:
    """Make ``kind`` usable as a deployment's ``provider`` (built-ins and plugins alike)."""
    _REGISTRY[kind] = factory


def provider_factory(kind: str) -> ProviderFactory:
    """The factory registered for ``kind`` (entry points are imported only when first used)."""
    _load_builtins()
    if kind not in _REGISTRY and kind in _DECLARED:
        _REGISTRY[kind] = _DECLARED[kind].load()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown provider {kind!r}; known: {', '.join(provider_kinds())}") from None


def provider_kinds() -> list[str]:
    """Every registered provider kind."""
    _load_builtins()
    return sorted({*_REGISTRY, *_DECLARED})


#: The built-in providers, as ``pyproject.toml`` declares them. Used when the installed package's
#: entry points are older than the source (an editable install made before a provider was added).
BUILTINS: dict[str, str] = {
    "openai": "tokenomy.providers.openai.provider:OpenAIProvider",
    "anthropic": "tokenomy.providers.anthropic.provider:AnthropicProvider",
    "local": "tokenomy.providers.local.provider:LocalProvider",
    "azure": "tokenomy.providers.azure.provider:AzureOpenAIProvider",
    "gemini": "tokenomy.providers.gemini.provider:GeminiProvider",
    "bedrock": "tokenomy.providers.bedrock.provider:BedrockProvider",
    **{kind: f"tokenomy.providers.presets:{kind}" for kind in
       ("groq", "together", "fireworks", "mistral", "deepseek", "openrouter", "ollama", "vllm", "sglang", "tgi",
        "lmstudio")},
}  # fmt: skip


def _load_builtins() -> None:
    """Find the providers declared under the ``tokenomy.providers`` entry-point group.

    The built-in providers are declared there too (see ``pyproject.toml``), so a third-party
    package adds a provider exactly the way Tokenomy adds its own.
    """
    if not _DECLARED:
        _DECLARED.update({entry.name: entry for entry in entry_points(group="tokenomy.providers")})
        for kind, target in BUILTINS.items():
            _DECLARED.setdefault(kind, EntryPoint(kind, target, "tokenomy.providers"))


_DECLARED: dict[str, EntryPoint] = {}
