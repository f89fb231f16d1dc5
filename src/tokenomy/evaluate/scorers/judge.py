"""The ``judge:MODEL`` scorer: another model grades the answer; its calls are priced and counted.

* **Pairwise** (the item has ``expected``): the judge compares the answer with the reference
  twice, once in each order, to cancel position bias. Preferred both times: 1; the reference
  preferred both times: 0; a tie or a disagreement between the two orders: 0.5. The score is thus
  a win rate against the reference, ties counted as half.
* **Rubric** (no ``expected``, or ``judge:MODEL,rubric``): the judge rates the answer 1-10;
  the score is ``(rating - 1) / 9``.

A judge whose reply cannot be read (no verdict, no rating) or whose call fails raises, so the item
counts as a scoring error, never as a wrong answer. The judge is called through the same gateway
as the candidates, with the cache bypassed, at temperature 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext, ScorerError

_PAIRWISE = """You are comparing two answers to the same request. Judge which answer is more correct, \
complete and helpful for the request. Do not let the order or the length of the answers sway you.

[Request]
{question}

[Answer 1]
{first}

[Answer 2]
{second}

Reply with exactly one of: "1" (answer 1 is better), "2" (answer 2 is better) or "TIE"."""

_RUBRIC = """Rate how well the answer serves the request, from 1 (useless or wrong) to 10 \
(fully correct, complete and clear).

[Request]
{question}

[Answer]
{answer}

Reply with the rating only, a whole number from 1 to 10."""

_VERDICT = re.compile(r"\b(TIE|1|2)\b", re.IGNORECASE)
_RATING = re.compile(r"\b(10|[1-9])\b")
_JUDGE_FIELDS: dict[str, Any] = {"temperature": 0, "max_tokens": 16}


class JudgeFailed(ValueError):
    """The judge's reply could not be read, or a call failed; ``cost_usd`` is what its calls cost so far."""

    def __init__(self, message: str, cost_usd: float) -> None:
        super().__init__(message)
        self.cost_usd = cost_usd


def _question(item: EvalItem) -> str:
    return "\n\n".join(f"{m.get('role')}: {m.get('content')}" for m in item.messages)


@dataclass(frozen=True, slots=True)
class Judge:
    """See the module docstring."""

    model: str
    rubric: bool = False
    name: str = "judge"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        if ctx.ask is None:
            raise ValueError("the judge scorer needs a gateway to call")
        if ctx.models and self.model not in ctx.models:
            raise ScorerError(f"judge model {self.model!r} is not served; known: {', '.join(ctx.models)}")
        if self.rubric or item.expected is None:
            return await self._rubric(answer, item, ctx)
        reference = item.expected if isinstance(item.expected, str) else str(item.expected)
        question = _question(item)
        cost = 0.0
        verdicts: list[str] = []
        for first, second, ours in ((answer, reference, "1"), (reference, answer, "2")):
            prompt = _PAIRWISE.format(question=question, first=first, second=second)
            try:
                text, spent = await ctx.ask(self.model, [{"role": "user", "content": prompt}], _JUDGE_FIELDS)
            except Exception as exc:
                raise JudgeFailed(str(exc), cost) from exc  # the first order's call was paid for
            cost += spent
            found = _VERDICT.search(text)
            if found is None:
                raise JudgeFailed(f"the judge gave no verdict: {text[:80]!r}", cost)
            verdict = found.group(1).upper()
            verdicts.append("tie" if verdict == "TIE" else ("win" if verdict == ours else "loss"))
        agreed = verdicts[0] == verdicts[1] and verdicts[0] != "tie"
        value = (1.0 if verdicts[0] == "win" else 0.0) if agreed else 0.5
        return Score(value, "/".join(verdicts), cost)

    async def _rubric(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        assert ctx.ask is not None
        prompt = _RUBRIC.format(question=_question(item), answer=answer)
        text, cost = await ctx.ask(self.model, [{"role": "user", "content": prompt}], _JUDGE_FIELDS)
        found = _RATING.search(text)
        if found is None:
            raise JudgeFailed(f"the judge gave no rating: {text[:80]!r}", cost)
        rating = int(found.group(1))
        return Score((rating - 1) / 9, f"rated {rating}", cost)


def judge(args: str | None) -> Judge:
    """``judge:MODEL`` (pairwise with a reference, else rubric) or ``judge:MODEL,rubric``."""
    if not args:
        raise ValueError("name the judge model: judge:MODEL")
    model, _, mode = args.partition(",")
    if mode not in ("", "rubric", "pairwise"):
        raise ValueError(f"judge mode must be 'rubric' or 'pairwise', got {mode!r}")
    return Judge(model, rubric=mode == "rubric")
