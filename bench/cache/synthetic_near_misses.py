#!/usr/bin/env python3
"""Near misses made from training sentences, for the cross-encoder's training (no labelled source).

The false hits left on duplicate-question traffic are mostly questions that share all but one of
their words: a word added ("Is fried food unhealthy?" / "Is pan fried food unhealthy?") or one put
in another's place ("... in Appling County GA?" / "... in Heard County GA?"). No labelled pairs of
that kind ship with a licence that allows training a shipped model on them, so this makes them
from any sentences (labels by construction, some of them wrong):

- **replaced** (label 0): one content word swapped for one of its nearest other words of the
  corpus by MiniLM cosine (``tomorrow`` for ``today``, ``Melbourne`` for ``Sydney``); words sharing
  their first four letters (``learn`` / ``learning``) are not candidates. A synonym is sometimes
  drawn, which makes that pair's label wrong;
- **added** (label 0): a content word that precedes one of the sentence's content words elsewhere
  in the corpus is put before it (``pan`` before ``fried``);
- **framed** (label 1): the sentence with a request frame around it ("Can you tell me ...",
  "... please"), which a cache must still answer.

``--exclude-fold R:K`` leaves out the LangCache and STS-B train sentences of that fold of the
cross-validation (``train_cross_encoder.py``'s fold seeds), so a probe of fold model R/K is not
trained on near misses of the sentences it is scored on::

    .venv/bin/python bench/cache/synthetic_near_misses.py --exclude-fold 0:0 \\
        --questions ../shared/data/banking77/train.csv.gz --out /tmp/synthetic.csv

Writes ``sentence1,sentence2,label,kind`` (``near_miss_training.py --near-misses`` reads it).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tokenomy.cache.semantic.tuning.intents import read_questions  # noqa: E402
from tokenomy.cache.semantic.verify import _FRAMING, _NUMBER_WORDS, _STOP  # noqa: E402

_CORE = re.compile(r"^(\W*)([^\W\d_]+(?:'[^\W\d_]+)?)(\W*)$")
_KEEP = (
    _STOP
    | _FRAMING
    | frozenset(_NUMBER_WORDS)
    | frozenset(["not", "no", "never", "without", "none", "nobody", "nothing", "nor", "neither"])
)
FRAMES = (
    "Can you tell me {lower}",
    "I'd like to know: {text}",
    "{text} Please answer.",
    "Quick question: {text}",
    "Please help: {text}",
    "I want to know {lower}",
)


def _core(word: str) -> tuple[str, str, str] | None:
    """(leading punctuation, the word, trailing punctuation), or None for a token that is no word."""
    m = _CORE.match(word)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _content(word: str) -> str | None:
    parts = _core(word)
    if parts is None or len(parts[1]) < 3 or "'" in parts[1] or parts[1].lower() in _KEEP:
        return None
    return parts[1].lower()


def _cased(new: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return new.upper()
    return new[:1].upper() + new[1:] if like[:1].isupper() else new


def _ending(word: str) -> str:
    """A crude word class from the ending, so a replacement keeps the sentence's grammar."""
    return next((e for e in ("ing", "ed", "ly", "s") if word.endswith(e)), "")


def neighbours(vocab: list[str], vectors: np.ndarray, k: int, ceiling: float) -> dict[str, list[str]]:
    """Each word's ``k`` nearest other words by cosine, below ``ceiling``, with the same ending
    (-ing, -ed, -ly, -s or other), none sharing its first four letters."""
    sims = vectors @ vectors.T
    out: dict[str, list[str]] = {}
    for i, word in enumerate(vocab):
        order = np.argsort(-sims[i])
        near = [vocab[j] for j in order[: 20 * k + 1] if j != i and sims[i, j] < ceiling
                and vocab[j][:4] != word[:4] and _ending(vocab[j]) == _ending(word)]  # fmt: skip
        out[word] = near[:k]
    return out


def make_pairs(
    sentences: list[str], near: dict[str, list[str]], before: dict[str, set[str]], seed: int
) -> list[tuple[str, str, int, str]]:
    """Per sentence one replaced near miss, and with probability 1/2 each an added near miss and a
    framed paraphrase. Deterministic for a seed."""
    rng = random.Random(seed)
    out: list[tuple[str, str, int, str]] = []
    for text in sentences:
        words = text.split()
        content = [(i, w) for i, word in enumerate(words) if (w := _content(word)) is not None]
        present = {w for _, w in content}
        swappable = [(i, w) for i, w in content if near.get(w)]
        if swappable:
            i, w = rng.choice(swappable)
            lead, core, trail = _core(words[i]) or ("", w, "")
            new = rng.choice([x for x in near[w] if x not in present] or near[w])
            out.append((text, " ".join([*words[:i], lead + _cased(new, core) + trail, *words[i + 1 :]]), 0, "replaced"))
        addable = [(i, w) for i, w in content if before.get(w, set()) - present]
        if addable and rng.random() < 0.5:
            i, w = rng.choice(addable)
            new = rng.choice(sorted(before[w] - present))
            lead, core, trail = _core(words[i]) or ("", w, "")
            if i == 0:  # the new word starts the sentence: it takes the capital
                added = lead + _cased(new, core) + " " + core[:1].lower() + core[1:] + trail
            else:
                added = new + " " + words[i]
            out.append((text, " ".join([*words[:i], added, *words[i + 1 :]]), 0, "added"))
        if rng.random() < 0.5:
            frame = rng.choice(FRAMES)
            lower = text[:1].lower() + text[1:] if not text[:2].isupper() else text
            out.append((text, frame.format(text=text, lower=lower), 1, "framed"))
    return out


def corpus_facts(sentences: list[str], min_count: int) -> tuple[list[str], dict[str, set[str]]]:
    """The content words seen at least ``min_count`` times, and for each content word the content
    words seen right before it."""
    counts: Counter[str] = Counter()
    before: dict[str, set[str]] = defaultdict(set)
    for text in sentences:
        words = [_content(w) for w in text.split()]
        counts.update(w for w in words if w)
        for prev, word in itertools.pairwise(words):
            if prev and word and prev != word:
                before[word].add(prev)
    vocab = sorted(w for w, n in counts.items() if n >= min_count)
    keep = set(vocab)
    return vocab, {w: {p for p in ps if p in keep} for w, ps in before.items() if w in keep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--questions", type=Path, nargs="*", default=[], help="more sentences: CSV with a text column")
    ap.add_argument("--exclude-fold", help="R:K, leave out that cross-validation fold's sentences")
    ap.add_argument("--per-source", type=int, default=1500, help="sentences drawn from each source (seed 0)")
    ap.add_argument("--neighbours", type=int, default=8)
    ap.add_argument("--ceiling", type=float, default=0.9, help="replacement words must be below this cosine")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    opts = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import train_cross_encoder as tce  # the training extras (torch), needed here only for the folds

    lc, sts = tce.read_langcache(opts.data), tce.read_stsb(opts.data / "stsb" / "sts-train.csv")
    if opts.exclude_fold:
        parts = opts.exclude_fold.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) >= tce.FOLDS:
            ap.error(f"--exclude-fold {opts.exclude_fold}: expected REPEAT:FOLD, the fold below {tce.FOLDS}")
        repeat, k = int(parts[0]), int(parts[1])
        lc_fold, sts_fold = tce.fold_of(tce.groups(lc), 1000 + repeat), tce.fold_of(tce.groups(sts), 2000 + repeat)
        lc = [p for p, f in zip(lc, lc_fold, strict=True) if f != k]
        sts = [p for p, f in zip(sts, sts_fold, strict=True) if f != k]
    sources = [sorted({s for a, b, _ in lc for s in (a, b)}), sorted({s for a, b, _ in sts for s in (a, b)})]
    sources += [sorted(read_questions(path, "")) for path in opts.questions]
    rng = random.Random(opts.seed)
    drawn = [s.strip() for source in sources for s in rng.sample(source, min(opts.per_source, len(source)))]
    everything = sorted({s.strip() for source in sources for s in source})
    vocab, before = corpus_facts(everything, 2)
    from tokenomy.cache.cli import embedder

    embed = embedder()
    vectors = np.concatenate([embed(vocab[i : i + 256]) for i in range(0, len(vocab), 256)])
    near = neighbours(vocab, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), opts.neighbours, opts.ceiling)
    pairs = make_pairs(drawn, near, before, opts.seed)
    with open(opts.out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label", "kind"])
        writer.writerows(pairs)
    kinds = Counter(kind for *_, kind in pairs)
    print(f"{len(drawn)} sentences, {len(vocab)} words: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()
