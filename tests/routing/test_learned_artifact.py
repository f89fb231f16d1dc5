"""The router file: round trip, and a clear error for every way it can be bad."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.routing.learned_helpers import FAST, ROUTERBENCH, fake_embed

from tokenomy.routing.learned import (
    LearnedRouter,
    RouterFileError,
    load_outcomes,
    load_router,
    save_router,
    train_router,
)


def _trained(factory: pytest.TempPathFactory, family: str) -> tuple[LearnedRouter, Path]:
    options = dataclasses.replace(FAST, family=family)
    router = train_router(load_outcomes(ROUTERBENCH), fake_embed, options, source=str(ROUTERBENCH))
    path = factory.mktemp("router") / f"{family}.npz"
    save_router(router, path)
    return router, path


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[LearnedRouter, Path]:
    return _trained(tmp_path_factory, "logistic")


@pytest.fixture(scope="module")
def saved_knn(tmp_path_factory: pytest.TempPathFactory) -> tuple[LearnedRouter, Path]:
    return _trained(tmp_path_factory, "knn")


@pytest.mark.parametrize("which", ["saved", "saved_knn"])
def test_round_trip(which: str, request: pytest.FixtureRequest) -> None:
    router, path = request.getfixturevalue(which)
    loaded = load_router(path)
    assert loaded.models == router.models and loaded.rule == router.rule and loaded.threshold == router.threshold
    assert loaded.family == router.family == ("knn" if which == "saved_knn" else "logistic")
    assert loaded.preambles.texts == router.preambles.texts and len(router.preambles.texts) == 2
    assert loaded.knob == router.knob and np.array_equal(loaded.train_hashes, router.train_hashes)
    assert loaded.meta["trained_on"] == ROUTERBENCH.name and loaded.meta["split"] == "train"
    prompts = load_outcomes(ROUTERBENCH).prompts[:20]
    emb = fake_embed(prompts)
    assert np.allclose(loaded.predict(emb, prompts), router.predict(emb, prompts))
    assert [loaded.choose(e, p).model for e, p in zip(emb, prompts, strict=True)] == [
        router.choose(e, p).model for e, p in zip(emb, prompts, strict=True)
    ]
    with np.load(path, allow_pickle=False) as data:  # nothing in it needs pickle
        assert set(data.files) >= {"header", "cost_base", "weights" if which == "saved" else "knn_ref"}


def _rewrite(path: Path, target: Path, change: Callable[[dict[str, np.ndarray]], None]) -> Path:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    target.write_bytes(buffer.getvalue())
    return target


def _header(**changes: object) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        header = json.loads(str(arrays["header"][()]))
        header.update(changes)
        arrays["header"] = np.array(json.dumps(header))

    return change


def _array(name: str, value: object) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        if value is None:
            del arrays[name]
        else:
            arrays[name] = np.asarray(value)

    return change


def _bias_nan(arrays: dict[str, np.ndarray]) -> None:
    arrays["bias"] = arrays["bias"].copy()
    arrays["bias"][0] = np.nan


_KNN_CASES = [
    (_array("knn_ref_y", np.zeros((3, 3))), "knn arrays have inconsistent shapes"),
    (_array("knn_ref_group", None), "missing arrays: 'knn_ref_group'"),
    (_header(knn={"k": "many"}), "corrupt header (knn)"),
]


_LINEAR_CASES = [
    (_header(version=99), "router file version 99; this tokenomy reads version 2"),
    (_header(family="dice"), "unknown router family 'dice'"),
    (_header(knob={"vertices": [], "default": 0.5}), "corrupt header (knob)"),
    (
        _header(knob={"vertices": [{"kind": "model", "value": 99, "cost": 1, "accuracy": 1}], "default": 0.5}),
        "corrupt header (knob)",
    ),
    (_header(preambles="not a list"), "corrupt header (preambles)"),
    (_header(format="something-else"), "not a router file (format 'something-else')"),
    (_header(rule="coin-flip"), "unknown decision rule 'coin-flip'"),
    (_header(models=[]), "corrupt header (models)"),
    (_header(features={"embedding": "other"}), "trained on other features"),
    (_array("weights", np.zeros((3, 3))), "weights have shape (3, 3)"),
    (_array("scale", np.zeros(2)), "scale has shape (2,)"),
    (_array("bias", None), "missing arrays: 'bias')"),
    (_array("header", np.array([{"evil": 1}], dtype=object)), "corrupt"),
    (_bias_nan, "bias holds non-numeric or non-finite values"),
    (_array("train_hashes", None), "missing arrays: 'train_hashes'"),
]


@pytest.mark.parametrize(
    ("which", "change", "message"),
    [("saved", c, m) for c, m in _LINEAR_CASES] + [("saved_knn", c, m) for c, m in _KNN_CASES],
)
def test_bad_contents(
    which: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    change: Callable[[dict[str, np.ndarray]], None],
    message: str,
) -> None:
    bad = _rewrite(request.getfixturevalue(which)[1], tmp_path / "bad.npz", change)
    with pytest.raises(RouterFileError) as info:
        load_router(bad)
    assert message in str(info.value) and str(bad) in str(info.value)


def test_missing_garbage_and_truncated_files(saved: tuple[LearnedRouter, Path], tmp_path: Path) -> None:
    with pytest.raises(RouterFileError, match="no such router file"):
        load_router(tmp_path / "nope.npz")
    (tmp_path / "garbage.npz").write_bytes(b"\x00not a zip" * 50)
    with pytest.raises(RouterFileError, match="not a router file or corrupt"):
        load_router(tmp_path / "garbage.npz")
    blob = saved[1].read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RouterFileError, match="not a router file or corrupt"):
        load_router(tmp_path / "cut.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(RouterFileError, match="missing arrays: 'header'"):
        load_router(tmp_path / "other.npz")
