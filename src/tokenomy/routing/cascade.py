"""Cascade checks: does a cheap model's answer pass, or should the next model answer?

Each check reads the whole (non-streamed) response body and the client's request body:

- ``logprob``: the mean of ``choices[0].logprobs.content[*].logprob`` is at least ``min``; a
  response without logprobs passes (the provider cannot be judged on them);
- ``json_schema``: the answer parses as JSON, and validates against the request's
  ``response_format.json_schema.schema`` when there is one (``jsonschema``);
- ``regex``: ``re.search(pattern, answer)``;
- ``confidence``: a distilled student's ``tokenomy.confidence`` is at least ``min`` and it did not
  abstain; an answer without a confidence fails (it cannot be trusted on this check);
- ``verifier``: another model grades the answer 0-10 (:func:`grading_messages`, :func:`parse_score`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tokenomy.config.policy import ConfidenceCheck, JsonSchemaCheck, LogprobCheck, RegexCheck


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's outcome and a short reason (kept in the request's decisions)."""

    passed: bool
    reason: str


def answer_text(body: dict[str, Any]) -> str:
    """The first choice's text (chat message content or completion text); ``""`` when absent."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    return content if isinstance(content, str) else ""


def mean_logprob(body: dict[str, Any]) -> float | None:
    """Mean token logprob of the first choice; ``None`` when the response carries none."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    logprobs = choices[0].get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    values = [float(t["logprob"]) for t in content if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    return sum(values) / len(values) if values else None


def check_logprob(check: LogprobCheck, body: dict[str, Any]) -> Verdict:
    """Mean logprob at least ``check.min`` (no logprobs: passes)."""
    mean = mean_logprob(body)
    if mean is None:
        return Verdict(True, "logprob: none returned")
    return Verdict(mean >= check.min, f"logprob: mean {mean:.3f} vs min {check.min}")


def check_confidence(check: ConfidenceCheck, body: dict[str, Any]) -> Verdict:
    """The student's confidence reaches ``check.min`` and it did not abstain."""
    extra = body.get("tokenomy")
    if not isinstance(extra, dict) or not isinstance(extra.get("confidence"), int | float):
        return Verdict(False, "confidence: none returned")
    value = float(extra["confidence"])
    if extra.get("abstained") is True:
        return Verdict(False, f"confidence: {value:.3f}, abstained")
    return Verdict(value >= check.min, f"confidence: {value:.3f} vs min {check.min}")


def check_regex(check: RegexCheck, body: dict[str, Any]) -> Verdict:
    """The answer matches the pattern."""
    ok = re.search(check.pattern, answer_text(body)) is not None
    return Verdict(ok, f"regex: {'matched' if ok else 'no match'}")


def request_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of the request's ``response_format`` (``json_schema`` type), if any."""
    fmt = request.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def check_json_schema(_check: JsonSchemaCheck, body: dict[str, Any], request: dict[str, Any]) -> Verdict:
    """The answer is JSON, valid against the request's schema when it names one."""
    try:
        value = json.loads(answer_text(body))
    except ValueError:
        return Verdict(False, "json_schema: not JSON")
    schema = request_schema(request)
    fmt = request.get("response_format")
    if schema is None:
        if isinstance(fmt, dict) and fmt.get("type") == "json_object" and not isinstance(value, dict):
            return Verdict(False, "json_schema: not a JSON object")
        return Verdict(True, "json_schema: valid JSON")
    problem = _schema_problem(value, schema)
    return Verdict(problem is None, f"json_schema: {problem or 'valid'}")


def _schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not fit ``schema``, or ``None``."""
    import jsonschema  # type: ignore[import-untyped]  # on first use: most gateways never run a JSON-schema check

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"invalid: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the request's schema is invalid: {exc.message}"
    return None


GRADING_PROMPT = (
    "You grade answers. Rate how well the ANSWER responds to the REQUEST, from 0 (useless or wrong) "
    "to 10 (fully correct and complete). Reply with the score only, as 'SCORE: <number>'."
)


def grading_messages(request: dict[str, Any], answer: str) -> list[dict[str, str]]:
    """The verifier's chat messages: the grading instructions, then the request and the answer."""
    if isinstance(request.get("messages"), list):
        asked = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in request["messages"] if isinstance(m, dict))
    else:
        asked = str(request.get("prompt", ""))
    return [
        {"role": "system", "content": GRADING_PROMPT},
        {"role": "user", "content": f"REQUEST:\n{asked}\n\nANSWER:\n{answer}\n\nSCORE:"},
    ]


_SCORE = re.compile(r"SCORE:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*/\s*10)?(?![\w.])")


def parse_score(text: str) -> float | None:
    """The verifier's 0-10 score: after ``SCORE:`` if present, else the reply's only number."""
    found = _SCORE.findall(text)
    if not found:
        found = _NUMBER.findall(text.strip())
        if len(found) != 1:
            return None
    score = float(found[-1])
    return score if 0.0 <= score <= 10.0 else None
