"""How the ONNX threads wait: the session settings each mode writes, and that no mode changes a vector."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tokenomy.providers.local.embeddings import EmbedItem, MiniLMEmbedder
from tokenomy.providers.local.onnx_threads import Spinning, set_threads


@pytest.mark.parametrize(
    ("spinning", "allow", "stop"), [("always", "1", None), ("in-run", "1", "1"), ("never", "0", None)]
)
def test_each_mode_writes_its_session_settings(spinning: Spinning, allow: str, stop: str | None) -> None:
    options = ort.SessionOptions()
    set_threads(options, 2, spinning)
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == allow
    if stop is None:
        with pytest.raises(RuntimeError):  # not set: ONNX Runtime keeps spinning after a run, or never spins
            options.get_session_config_entry("session.force_spinning_stop")
    else:
        assert options.get_session_config_entry("session.force_spinning_stop") == stop


def test_every_mode_gives_the_same_vectors() -> None:
    """Spinning changes how threads wait, not how a matmul is split: the vectors are bit for bit equal."""
    texts: list[EmbedItem] = ["How do I reset my router password?", "capital city of canada", "long text " * 20]
    vectors = []
    for spinning in ("always", "in-run", "never"):
        model = MiniLMEmbedder(n_threads=2, spin=spinning)
        model.load()
        vectors.append(np.stack([e.vector for e in model.embed(texts)]))
        model.close()
    assert np.array_equal(vectors[0], vectors[1]) and np.array_equal(vectors[1], vectors[2])


def test_one_shared_embedder_per_arithmetic_and_wait() -> None:
    """The semantic tier, learned routers and few-shot selection of a gateway share one embedder: the
    same arithmetic and ``server.onnx_spinning`` give the same object, another gives its own."""
    from tokenomy.providers.local.shared_embed import shared_embedder

    default = shared_embedder()
    assert shared_embedder("float32", "in-run") is default
    assert (default.arithmetic, default.spinning) == ("float32", "in-run")
    never = shared_embedder("float32", "never")
    assert never is not default and never.spinning == "never" and shared_embedder("float32", "never") is never
    assert shared_embedder("int8", "in-run") is not default
