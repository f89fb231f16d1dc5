"""Training examples from the usage ledger: a task's logged requests, labelled by the teacher's answers.

The ledger keeps a request's prompt and its answer's text when ``ledger.store_prompts`` is on
(the reading is :func:`tokenomy.evaluate.ledger_source.logged_requests`: successful chat requests
that reached a model, not cache hits). The student reads the user turns; the label is the answer,
normalised by :func:`normalise_label`. Answers from a distilled student (any model served by a
``provider: local, model: distilled`` deployment) are left out: a student must learn from its
teacher, not from itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tokenomy.config.models import GatewayConfig
from tokenomy.distill.data import DistillDataError, Examples, text_of
from tokenomy.evaluate.ledger_source import LedgerSourceError, LoggedRequest, logged_requests

MAX_LABEL_CHARS = 64
"""Longer answers are free text, not labels: they are skipped (and counted)."""

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"  # straight and curly quotes, backticks


def normalise_label(answer: str) -> str:
    """The label an answer stands for: ``' "Card_Arrival." '`` → ``card_arrival``.

    Trims spaces and surrounding quotes or backticks, drops a trailing full stop, collapses inner
    white space to one space and lower-cases (``casefold``).
    """
    label = answer.strip().strip(_QUOTES).strip()
    label = label.removesuffix(".").strip().strip(_QUOTES).strip()
    return re.sub(r"\s+", " ", label).casefold()


@dataclass(frozen=True, slots=True)
class LedgerExamples:
    """The examples and what was left out, by reason."""

    examples: Examples
    logged: int
    skipped: dict[str, int]


def student_models(config: GatewayConfig) -> set[str]:
    """Names of the models a distilled student serves (their answers are not the teacher's)."""
    return {
        model.name
        for model in config.models
        for dep in model.deployments
        if dep.provider == "local" and dep.model == "distilled"
    }


def teacher_requests(config: GatewayConfig, task: str, since: float | None) -> tuple[list[LoggedRequest], set[str]]:
    """The task's logged requests and the student models whose answers are to be left out; a ledger
    that cannot be read is a :class:`DistillDataError`."""
    try:
        requests = logged_requests(config, task, since=since)
    except LedgerSourceError as exc:
        raise DistillDataError(str(exc)) from None
    return requests, student_models(config)


def ledger_examples(
    config: GatewayConfig, task: str, *, since: float | None = None, teacher: str | None = None, min_count: int = 2
) -> LedgerExamples:
    """The task's logged requests as labelled examples; labels seen fewer than ``min_count`` times are dropped."""
    requests, students = teacher_requests(config, task, since)
    skipped: Counter[str] = Counter()
    pairs: list[tuple[str, str]] = []
    for req in requests:
        served = req.served_model or req.requested_model
        if served in students:
            skipped["answered by a student"] += 1
        elif teacher is not None and served != teacher:
            skipped[f"answered by another model than {teacher}"] += 1
        elif req.response is None:
            skipped["no stored answer"] += 1
        elif not (text := text_of({"messages": req.messages})).strip():
            skipped["no user text"] += 1
        elif not (label := normalise_label(req.response)):
            skipped["empty answer"] += 1
        elif len(label) > MAX_LABEL_CHARS:
            skipped[f"answer longer than {MAX_LABEL_CHARS} characters (free text, not a label)"] += 1
        else:
            pairs.append((text, label))
    counts = Counter(label for _, label in pairs)
    rare = {label for label, n in counts.items() if n < min_count}
    if rare:
        skipped[f"label seen fewer than {min_count} times"] += sum(counts[label] for label in rare)
        pairs = [(text, label) for text, label in pairs if label not in rare]
    if not pairs:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none"
        raise DistillDataError(f"no usable teacher answers for task {task!r} in the ledger (left out: {reasons})")
    return LedgerExamples(Examples([t for t, _ in pairs], [label for _, label in pairs]), len(requests), dict(skipped))
