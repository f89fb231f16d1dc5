"""A scorer as a third-party package would ship one (registered under ``tokenomy.scorers``)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext


@dataclass(frozen=True, slots=True)
class Shout:
    """1 when the answer is upper case and ends with the given mark."""

    mark: str
    name: str = "shout"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        return Score(1.0 if answer.isupper() and answer.endswith(self.mark) else 0.0)


def make(args: str | None) -> Shout:
    """The factory the entry point names."""
    return Shout(args or "!")
