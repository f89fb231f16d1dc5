"""What a scorer is, and the registry that finds scorers by name.

A scorer turns a model's answer to an item into a score in [0, 1]. Scorers are found through the
``tokenomy.scorers`` entry-point group, exactly as a third-party package adds one::

    [project.entry-points."tokenomy.scorers"]
    rouge = "mypkg.scorers:make_rouge"     # a factory: make_rouge(args: str | None) -> Scorer

The built-ins are declared there too (``pyproject.toml``); when the package is used from a source
tree without being installed (no entry points yet), the built-ins are still found.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from tokenomy.evaluate.dataset import EvalItem

GROUP = "tokenomy.scorers"


class ScorerError(ValueError):
    """An unknown scorer, or a scorer given arguments it cannot use."""


@dataclass(frozen=True, slots=True)
class Score:
    """A score in [0, 1], a short reason, and what scoring itself cost (a judge's calls)."""

    value: float
    detail: str = ""
    cost_usd: float = 0.0


Ask = Callable[[str, list[dict[str, Any]], dict[str, Any]], Awaitable[tuple[str, float]]]
"""Ask a model through the gateway: ``(model, messages, extra fields) -> (answer text, cost USD)``."""


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """What a scorer may use besides the answer: the gateway (for judges) and the known models."""

    ask: Ask | None = None
    models: tuple[str, ...] = ()


class Scorer(Protocol):
    """Scores one answer. Raising marks the item as a scoring error (counted apart from wrong answers)."""

    name: str

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        """The answer's score against ``item.expected``."""


ScorerFactory = Callable[[str | None], Scorer]

BUILTINS: dict[str, str] = {
    "exact": "tokenomy.evaluate.scorers.text:exact",
    "contains": "tokenomy.evaluate.scorers.text:contains",
    "regex": "tokenomy.evaluate.scorers.text:regex",
    "choice": "tokenomy.evaluate.scorers.text:choice",
    "number": "tokenomy.evaluate.scorers.text:number",
    "json": "tokenomy.evaluate.scorers.structured:json_scorer",
    "similarity": "tokenomy.evaluate.scorers.similarity:similarity",
    "code": "tokenomy.evaluate.scorers.code:code",
    "judge": "tokenomy.evaluate.scorers.judge:judge",
}
"""``name -> module:factory`` of the scorers that ship with Tokenomy (also declared as entry points)."""


def scorer_names() -> list[str]:
    """Every scorer name: the built-ins and whatever is installed under the entry-point group."""
    return sorted({*BUILTINS, *(ep.name for ep in entry_points(group=GROUP))})


def make_scorer(spec: str) -> Scorer:
    """The scorer for ``NAME`` or ``NAME:ARGS`` (e.g. ``number:0.01``, ``judge:large``)."""
    name, _, args = spec.partition(":")
    factory = _factory(name)
    try:
        return factory(args or None)
    except ScorerError:
        raise
    except ValueError as exc:
        raise ScorerError(f"scorer {name!r}: {exc}") from None


def _factory(name: str) -> ScorerFactory:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            loaded: ScorerFactory = ep.load()
            return loaded
    target = BUILTINS.get(name)
    if target is None:
        known = scorer_names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ScorerError(f"unknown scorer {name!r} (known: {', '.join(known)}){hint}")
    module, _, attr = target.partition(":")
    found: ScorerFactory = getattr(importlib.import_module(module), attr)
    return found
