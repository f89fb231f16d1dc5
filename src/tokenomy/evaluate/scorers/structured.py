"""The ``json`` scorer: the answer parses as JSON, validates against the request's schema, and its
named fields equal ``expected``'s.

* The answer may be wrapped in a Markdown code fence; anything else around the JSON fails it.
* The schema is the item's ``request.response_format.json_schema.schema`` when there is one
  (``jsonschema``, the draft the schema names, else 2020-12); a failed validation scores 0.
* ``json`` compares every field of ``expected`` (an object); ``json:a,b`` only fields ``a`` and
  ``b``. The score is the share of compared fields that are equal (1 when nothing is compared and
  the answer is valid). Unparsable or invalid answers score 0 with the reason in ``detail``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.scorers.base import Score, ScoreContext

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def parse_json_answer(answer: str) -> Any:
    """The answer's JSON value (a surrounding code fence is removed); ``ValueError`` otherwise."""
    fenced = _FENCE.match(answer)
    return json.loads(fenced.group(1) if fenced else answer)


def request_schema(item: EvalItem) -> dict[str, Any] | None:
    """The JSON schema the item's request asked for, if any."""
    fmt = item.request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None
    return None


@dataclass(frozen=True, slots=True)
class JsonScorer:
    """See the module docstring."""

    fields: tuple[str, ...] = ()
    name: str = "json"

    async def score(self, answer: str, item: EvalItem, ctx: ScoreContext) -> Score:
        try:
            value = parse_json_answer(answer)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        schema = request_schema(item)
        if schema is not None:
            validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
            if error is not None:
                return Score(0.0, f"schema: {error.message[:120]}")
        expected = item.expected
        if expected is None and not self.fields:
            return Score(1.0, "valid")
        if not isinstance(expected, dict):
            raise ValueError(f"item {item.id!r}: the json scorer compares fields with an object 'expected'")
        names = self.fields or tuple(expected)
        if not isinstance(value, dict):
            return Score(0.0, "answer is not an object")
        equal = [n for n in names if n in value and value[n] == expected.get(n)]
        wrong = [n for n in names if n not in equal]
        return Score(len(equal) / len(names) if names else 1.0, f"wrong: {', '.join(wrong)}" if wrong else "")


def json_scorer(args: str | None) -> JsonScorer:
    """``json`` or ``json:field1,field2``."""
    fields = tuple(f.strip() for f in (args or "").split(",") if f.strip())
    return JsonScorer(fields)
