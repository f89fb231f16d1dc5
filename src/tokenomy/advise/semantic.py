"""Near-duplicate prompts the exact cache cannot catch → the semantic cache, with the money attached.

The ledger keeps no embeddings, so the estimate reads the stored prompts (``ledger.store_prompts``) of each
task and model: the most recent :data:`SAMPLE` paid requests, oldest first. A request counts as a
would-be semantic hit when an earlier request in the sample had the same conversation context (every
message but the last, and the last one's role) and a last turn that is not identical but close: cosine
of character 3-5-gram TF-IDF vectors at least :data:`THRESHOLD` (a lexical stand-in for the semantic
cache's sentence embedding plus verifier; reworded questions with few shared words are missed, so the
estimate leans low). Exact repeats are left to the exact-cache detector. The sample's saving is scaled to
the task's whole paid spend in the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from tokenomy.advise.data import LedgerReader, Usage
from tokenomy.advise.detectors import MIN_REQUESTS, Found
from tokenomy.reports.render_table import short_money

SAMPLE = 500
"""Paid requests per task and model read for the estimate (the most recent)."""
THRESHOLD = 0.85
"""Character n-gram cosine (case, punctuation and spacing ignored) from which two last turns count as the same
question. "what is the capital city of france" scores about 0.8 against "What is the capital of France?" and
is not counted; "... of Germany?" scores about 0.4."""
MIN_HITS = 5
"""Fewer would-be hits than this in the sample are not advised on."""


def split_prompt(text: str) -> tuple[str, str]:
    """(context, last turn's text) of a stored prompt: chat messages as JSON, or plain text."""
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "", text
    if isinstance(value, str):
        return "", value
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        return text, ""
    last = value[-1]
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    context = orjson.dumps([*value[:-1], {k: v for k, v in last.items() if k != "content"}]).decode()
    return context, str(content or "")


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def near_duplicates(prompts: list[tuple[str, str, float]]) -> tuple[int, float]:
    """Would-be semantic hits among ``(hash, prompt, cost)`` in time order: (how many, their cost)."""
    seen_hashes: set[str] = set()
    parts = [split_prompt(p) for _, p, _ in prompts]
    questions = [_normal(q) for _, q in parts]
    if sum(1 for q in questions if q) < 2:
        return 0, 0.0
    # Imported here, not at the top: the dashboard's advice page imports this module in the serving
    # process, and numpy, scipy and scikit-learn would add ~90 MB to every gateway process's idle memory.
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit_transform([q or " " for q in questions])
    by_context: dict[str, list[int]] = {}
    hits, cost = 0, 0.0
    for i, (prompt_hash, _, price) in enumerate(prompts):
        context, question = parts[i][0], questions[i]
        earlier = by_context.setdefault(context, [])
        if prompt_hash not in seen_hashes and question and earlier:
            sims = (vectors[earlier] @ vectors[i].T).toarray().ravel()
            same = np.array([questions[j] == question for j in earlier])
            if bool(np.any((sims >= THRESHOLD) | same)):
                hits += 1
                cost += price
        seen_hashes.add(prompt_hash)
        earlier.append(i)
    return hits, cost


def semantic_cache(reader: LedgerReader, usage: list[Usage]) -> Iterator[Found]:
    """Tasks whose paid prompts repeat in other words → the semantic cache tier."""
    for u in usage:
        if u.requests < MIN_REQUESTS:
            continue
        sample = reader.paid_prompts(u.task, u.model, SAMPLE)
        if len(sample) < MIN_REQUESTS:
            continue
        hits, cost = near_duplicates(sample)
        sample_cost = sum(c for _, _, c in sample)
        if hits < MIN_HITS or cost <= 0 or sample_cost <= 0:
            continue
        scale = max(1.0, u.cost_usd / sample_cost)
        yield Found(
            kind="semantic-cache",
            title=f"Answer reworded repeats of task {u.task!r} from the semantic cache",
            task=u.task,
            model=u.model,
            saving_usd=cost * scale,
            confidence="medium" if hits >= MIN_REQUESTS else "low",
            evidence=(
                f"of the {len(sample)} most recent paid requests, {hits} ({hits / len(sample):.0%}) asked an earlier "
                f"question again in other words (same conversation, last turn {THRESHOLD:.0%} alike by character "
                f"n-grams, not identical), costing {short_money(cost)}",
                f"scaled to the task's paid spend in the window: {short_money(cost * scale)}",
            ),
            action=(
                "cache:\n  semantic:\n    enabled: true\n    audit_share: 0.05   "
                "# answer 5% of hits upstream too: the report shows the measured precision,\n"
                "                        # and a task the error budget cannot keep within 1% is suspended"
            ),
            assumptions=(
                "the semantic cache accepts these rewordings (its verifier may refuse some; others with fewer "
                "shared words, not counted here, may hit)",
                "an earlier answer is right for a reworded question of this task (check the measured precision "
                "with audit_share before relying on it)",
            ),
        )
