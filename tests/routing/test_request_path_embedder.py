"""The embedder the semantic cache and the learned router share runs on the request path: its
ONNX threads spin only within a run (docs/benchmarks.md, "Spinning within a run": threads that kept
spinning after a run cost twice the CPU and a worse p99; sleeping between operators cost 2.5 ms
of a lookup's p50)."""

from __future__ import annotations

from typing import Any

import pytest

from tokenomy.providers.local.embeddings import MiniLMEmbedder
from tokenomy.routing.learned import features


def test_the_request_path_embedder_spins_within_a_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[MiniLMEmbedder] = []

    class Recording(MiniLMEmbedder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(features, "MiniLMEmbedder", Recording)
    vectors = features.minilm_embed()(["What is the capital of Canada?"])
    assert vectors.shape == (1, 384)
    assert len(made) == 1 and made[0].spin == "in-run" and made[0].loaded
