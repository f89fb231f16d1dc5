"""The router file: one ``.npz`` (no pickles) holding the family's arrays and a JSON header.

Arrays: ``cost_base`` and ``cost_per_char`` (per model), ``train_hashes`` (8-byte hashes of the
training prompts, so ``evaluate`` can say which rows are not held out) and the scorer's:
``weights``, ``bias``, ``scale``, ``shift`` for a linear family, ``knn_*`` for ``knn``. ``header``
is a JSON string: format and version, models, family, feature config, the learned preambles, the
knob (hull vertices and default position), the decision rule and how the router was trained.
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
from tokenomy.routing.learned.families import FAMILIES
from tokenomy.routing.learned.features import CHEAP_FEATURES, LONG_TAIL_CHARS, WINDOW_CHARS
from tokenomy.routing.learned.knob import Knob
from tokenomy.routing.learned.preamble import Preambles
from tokenomy.routing.learned.router import RULES, LearnedRouter
from tokenomy.routing.learned.scorers import KnnScorer, LinearScorer, Scorer

FORMAT = "tokenomy-learned-router"
VERSION = 2
_LINEAR = ("weights", "bias", "scale", "shift")
_KNN = ("knn_mean", "knn_proj", "knn_ref", "knn_ref_group", "knn_ref_y", "knn_prior")


class RouterFileError(ValueError):
    """A router file that is missing, corrupt, of another version, or inconsistent."""


def feature_config() -> dict[str, Any]:
    """What the features mean; a router is only loaded when this matches."""
    return {
        "embedding": "all-MiniLM-L6-v2",
        "embedding_dim": EMBEDDING_DIM,
        "input": "tail after a learned preamble",
        "windows": [LONG_TAIL_CHARS, WINDOW_CHARS],
        "cheap": list(CHEAP_FEATURES),
    }


def save_router(router: LearnedRouter, path: str | Path) -> None:
    """Write ``router`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    scorer = router.scorer
    header = {
        "format": FORMAT,
        "version": VERSION,
        "models": router.models,
        "family": router.family,
        "features": feature_config(),
        "preambles": router.preambles.texts,
        "knob": router.knob.as_json(),
        "rule": router.rule,
        "knn": {"k": scorer.k, "alpha": scorer.alpha} if isinstance(scorer, KnnScorer) else None,
        "meta": router.meta,
    }
    arrays: dict[str, Any] = dict(scorer.arrays())
    arrays["cost_base"] = router.cost_base
    arrays["cost_per_char"] = router.cost_per_char
    arrays["train_hashes"] = router.train_hashes.astype(np.int64)
    arrays["header"] = np.array(json.dumps(header))
    buffer = io.BytesIO()
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
        if "header" not in data.files:
            raise RouterFileError(f"{path}: not a router file (missing arrays: 'header')")
        try:
            header = json.loads(str(data["header"][()]))
            arrays = {name: np.asarray(data[name]) for name in data.files if name != "header"}
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


def _need(path: Path, arrays: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in arrays]
    if missing:
        raise RouterFileError(f"{path}: not a router file (missing arrays: {', '.join(map(repr, missing))})")
    for name in names:
        if arrays[name].dtype.kind not in "fiu" or not np.isfinite(arrays[name]).all():
            raise RouterFileError(f"{path}: {name} holds non-numeric or non-finite values")


def _build(path: Path, header: dict[str, Any], arrays: dict[str, Any]) -> LearnedRouter:
    models = header.get("models")
    rule = header.get("rule")
    family = header.get("family")
    preambles = header.get("preambles")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RouterFileError(f"{path}: corrupt header (models)")
    if rule not in RULES:
        raise RouterFileError(f"{path}: unknown decision rule {rule!r} (known: {', '.join(RULES)})")
    if family not in FAMILIES:
        raise RouterFileError(f"{path}: unknown router family {family!r} (known: {', '.join(FAMILIES)})")
    if not isinstance(preambles, list) or not all(isinstance(p, str) for p in preambles):
        raise RouterFileError(f"{path}: corrupt header (preambles)")
    try:
        knob = Knob.from_json(header.get("knob"))
    except (KeyError, TypeError, ValueError):
        raise RouterFileError(f"{path}: corrupt header (knob)") from None
    if not 0 <= knob.default <= 1 or any(v.kind == "model" and not 0 <= v.value < len(models) for v in knob.vertices):
        raise RouterFileError(f"{path}: corrupt header (knob)")
    _need(path, arrays, ("cost_base", "cost_per_char", "train_hashes"))
    for name in ("cost_base", "cost_per_char"):
        if arrays[name].shape != (len(models),):
            raise RouterFileError(f"{path}: {name} has shape {arrays[name].shape}, expected {(len(models),)}")
    groups = len(preambles) + 1
    scorer = _scorer(path, family, header, arrays, len(models), groups)
    meta = header.get("meta")
    return LearnedRouter(
        models=list(models),
        family=family,
        scorer=scorer,
        preambles=Preambles(list(preambles)),
        knob=knob,
        cost_base=arrays["cost_base"].astype(np.float64),
        cost_per_char=arrays["cost_per_char"].astype(np.float64),
        rule=rule,
        meta=meta if isinstance(meta, dict) else {},
        train_hashes=arrays["train_hashes"].astype(np.int64),
    )


def _scorer(
    path: Path, family: str, header: dict[str, Any], arrays: dict[str, Any], models: int, groups: int
) -> Scorer:
    dim = EMBEDDING_DIM
    if family != "knn":
        _need(path, arrays, _LINEAR)
        features = dim + groups + len(CHEAP_FEATURES)
        if arrays["weights"].shape != (features, models):
            expected = (features, models)
            raise RouterFileError(f"{path}: weights have shape {arrays['weights'].shape}, expected {expected}")
        for name in _LINEAR[1:]:
            if arrays[name].shape != (models,):
                raise RouterFileError(f"{path}: {name} has shape {arrays[name].shape}, expected {(models,)}")
        w, b, a, s = (arrays[n].astype(np.float64) for n in _LINEAR)
        return LinearScorer(w, b, a, s, dim, groups)
    _need(path, arrays, _KNN)
    knn = header.get("knn")
    if not isinstance(knn, dict) or not isinstance(knn.get("k"), int) or not isinstance(knn.get("alpha"), int | float):
        raise RouterFileError(f"{path}: corrupt header (knn)")
    ref, proj = arrays["knn_ref"], arrays["knn_proj"]
    n = ref.shape[0] if ref.ndim == 2 else -1
    shapes_ok = (
        proj.ndim == 2 and proj.shape[0] == dim and ref.ndim == 2 and ref.shape[1] == proj.shape[1] and n > 0
        and arrays["knn_mean"].shape == (dim,) and arrays["knn_ref_group"].shape == (n,)
        and arrays["knn_ref_y"].shape == (n, models) and arrays["knn_prior"].shape == (groups, models)
        and int(arrays["knn_ref_group"].min()) >= 0 and int(arrays["knn_ref_group"].max()) < groups
        and knn["k"] >= 1
    )  # fmt: skip
    if not shapes_ok:
        raise RouterFileError(f"{path}: the knn arrays have inconsistent shapes")
    return KnnScorer(
        mean=arrays["knn_mean"].astype(np.float64), proj=proj.astype(np.float64), ref=ref.astype(np.float32),
        ref_group=arrays["knn_ref_group"].astype(np.intp), ref_y=arrays["knn_ref_y"].astype(np.float64),
        prior=arrays["knn_prior"].astype(np.float64), k=int(knn["k"]), alpha=float(knn["alpha"]),
    )  # fmt: skip
