"""The router file: one ``.npz`` (no pickles) holding the weights and a JSON header.

Arrays: ``weights`` (features x models), ``bias``, ``scale``, ``shift``, ``cost_base`` and
``cost_per_char`` (per model). ``header`` is a JSON string: format name and version, models,
feature config, decision rule, default threshold, and how the router was trained (data, split,
chosen hyperparameters) so that ``evaluate`` can tell which rows it held out.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tokenomy.providers.local.embeddings import EMBEDDING_DIM
from tokenomy.routing.learned.features import CHEAP_FEATURES
from tokenomy.routing.learned.router import RULES, LearnedRouter

FORMAT = "tokenomy-learned-router"
VERSION = 1
_ARRAYS = ("weights", "bias", "scale", "shift", "cost_base", "cost_per_char")


class RouterFileError(ValueError):
    """A router file that is missing, corrupt, of another version, or inconsistent."""


def feature_config() -> dict[str, Any]:
    """What the weights' rows mean; a router is only loaded when this matches."""
    return {"embedding": "all-MiniLM-L6-v2", "embedding_dim": EMBEDDING_DIM, "cheap": list(CHEAP_FEATURES)}


def save_router(router: LearnedRouter, path: str | Path) -> None:
    """Write ``router`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "models": router.models,
        "features": feature_config(),
        "rule": router.rule,
        "threshold": router.threshold,
        "meta": router.meta,
    }
    buffer = io.BytesIO()
    arrays = {name: np.asarray(getattr(router, name), dtype=np.float64) for name in _ARRAYS}
    arrays["header"] = np.array(json.dumps(header))
    np.savez(buffer, allow_pickle=False, **arrays)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def load_router(path: str | Path) -> LearnedRouter:
    """Read a router file; :class:`RouterFileError` says what is wrong with a bad one."""
    path = Path(path)
    if not path.is_file():
        raise RouterFileError(f"{path}: no such router file (create one with `tokenomy router train`)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RouterFileError(f"{path}: not a router file or corrupt ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise RouterFileError(f"{path}: not a router file (a bare array, not an .npz archive)")
    with loaded as data:
        missing = [name for name in ("header", *_ARRAYS) if name not in data.files]
        if missing:
            raise RouterFileError(f"{path}: not a router file (missing arrays: {', '.join(map(repr, missing))})")
        try:
            header = json.loads(str(data["header"][()]))
            arrays = {name: np.asarray(data[name], dtype=np.float64) for name in _ARRAYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise RouterFileError(f"{path}: not a router file or corrupt ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise RouterFileError(f"{path}: not a router file (format {found!r})")
    if header.get("version") != VERSION:
        raise RouterFileError(
            f"{path}: router file version {header.get('version')!r}; this tokenomy reads version {VERSION} "
            "(retrain it with `tokenomy router train`)"
        )
    if header.get("features") != feature_config():
        raise RouterFileError(f"{path}: trained on other features ({header.get('features')}); retrain it")
    return _build(path, header, arrays)


def _build(path: Path, header: dict[str, Any], arrays: dict[str, Any]) -> LearnedRouter:
    models = header.get("models")
    rule = header.get("rule")
    threshold = header.get("threshold")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RouterFileError(f"{path}: corrupt header (models)")
    if rule not in RULES:
        raise RouterFileError(f"{path}: unknown decision rule {rule!r} (known: {', '.join(RULES)})")
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise RouterFileError(f"{path}: corrupt header (threshold {threshold!r})")
    features = EMBEDDING_DIM + len(CHEAP_FEATURES)
    if arrays["weights"].shape != (features, len(models)):
        expected = (features, len(models))
        raise RouterFileError(f"{path}: weights have shape {arrays['weights'].shape}, expected {expected}")
    for name in _ARRAYS[1:]:
        if arrays[name].shape != (len(models),):
            raise RouterFileError(f"{path}: {name} has shape {arrays[name].shape}, expected {(len(models),)}")
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise RouterFileError(f"{path}: {name} holds non-finite values")
    meta = header.get("meta")
    return LearnedRouter(
        models=list(models),
        rule=rule,
        threshold=float(threshold),
        meta=meta if isinstance(meta, dict) else {},
        **arrays,
    )
