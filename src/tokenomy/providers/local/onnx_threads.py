"""How an ONNX Runtime session's intra-op threads wait for work between the steps of a run.

A run of a small transformer is a chain of some hundred small operators, each split between the
threads. Threads that sleep between operators must be woken for each one (a futex round trip);
threads that spin are already awake, but a spinning thread also burns its core after the run ends,
until ONNX Runtime's spin budget runs out. :data:`Spinning` picks one of three waits:

- ``always``: spin, also after a run (ONNX Runtime's default): the fastest for back-to-back batches
  (the local provider's ``/v1/embeddings``), and a core burnt between them;
- ``in-run``: spin between the operators of a run, sleep as soon as it returns
  (``session.force_spinning_stop``). Measured on the semantic tier's request path at a million
  entries (docs/benchmarks.md, "Spinning within a run"): a lookup took 9.3-9.7 ms p50 against
  12.0 with ``never``, for about the same CPU;
- ``never``: sleep between operators.

One thread never spins; the setting then changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

Spinning = Literal["always", "in-run", "never"]


def set_threads(options: Any, threads: int, spinning: Spinning) -> None:
    """Give an ``onnxruntime.SessionOptions`` ``threads`` intra-op threads (one inter-op) that wait by ``spinning``."""
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spinning == "never" else "1")
    if spinning == "in-run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
