"""Which worker process this is, for work that must run once per gateway.

``tokenomy serve --workers N`` starts N worker processes; the supervisor sets each one's slot
(0..N-1) in the environment. A replacement worker inherits the slot of the one it replaces.
"""

from __future__ import annotations

import os

WORKER_SLOT_ENV = "TOKENOMY_WORKER_SLOT"
"""Set in each worker to its slot (0..N-1)."""


def runs_singletons() -> bool:
    """Whether this process runs the once-per-gateway background work (the batch runner): true in a
    single-process gateway and in worker slot 0."""
    return os.environ.get(WORKER_SLOT_ENV, "0") == "0"
