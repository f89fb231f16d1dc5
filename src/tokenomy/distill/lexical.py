"""Word and character n-gram features for a student's second head (no vocabulary file to ship).

Texts are hashed by scikit-learn's ``HashingVectorizer`` (word 1-2-grams and character 2-5-grams
inside word boundaries, lower-cased), so the features need no pickled vocabulary: a student keeps
only the hashed columns seen in training and their inverse document frequencies. The weights are
TF-IDF with sublinear term frequency, L2-normalised over the kept columns — computed the same way at
training and at serving by :func:`features`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

HASH_FEATURES = 2**19  # per analyser; collisions are rare at this size for sentence-length texts

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _hashers() -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import HashingVectorizer

    common: dict[str, Any] = {"n_features": HASH_FEATURES, "alternate_sign": False, "norm": None, "lowercase": True}
    return (
        HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common),
        HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common),
    )


def counts(texts: list[str]) -> Any:
    """Hashed n-gram counts, one sparse row per text (word columns first, then character columns)."""
    from scipy import sparse

    words, chars = _hashers()
    return sparse.hstack([words.transform(texts), chars.transform(texts)]).tocsr()


def fit_vocabulary(texts: list[str]) -> tuple[IntArray, FloatArray]:
    """The hashed columns seen in ``texts`` and their smoothed inverse document frequencies."""
    matrix = counts(texts)
    document_freq = np.bincount(matrix.indices, minlength=matrix.shape[1])
    columns = np.nonzero(document_freq)[0].astype(np.int64)
    idf = np.log((1 + len(texts)) / (1 + document_freq[columns])) + 1.0
    return columns, idf.astype(np.float32)


def features(texts: list[str], columns: IntArray, idf: FloatArray) -> Any:
    """Sparse TF-IDF rows over the kept ``columns`` (sublinear counts, L2-normalised)."""
    from sklearn.preprocessing import normalize

    matrix = counts(texts)[:, columns].astype(np.float32)
    matrix.data = 1.0 + np.log(matrix.data)
    matrix = matrix.multiply(idf[None, :]).tocsr()
    return normalize(matrix, norm="l2", copy=False)
