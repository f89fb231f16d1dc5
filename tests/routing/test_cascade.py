"""Cascade checks and the cascade run by the policy stage against a scripted rest of the chain."""

from __future__ import annotations

from typing import Any

import pytest

from tokenomy.config import ConfigError, parse_config
from tokenomy.config.policy import JsonSchemaCheck, LogprobCheck, RegexCheck
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response, Stream, Usage
from tokenomy.pipeline.policy import PolicyStage
from tokenomy.routing import cascade as checks

MODELS = """
models:
  - name: cheap
    deployments: [{provider: openai, base_url: "http://c.invalid/v1", model: c,
                   pricing: {input_per_mtok: 1.0, output_per_mtok: 1.0}}]
  - name: smart
    deployments: [{provider: openai, base_url: "http://s.invalid/v1", model: s,
                   pricing: {input_per_mtok: 10.0, output_per_mtok: 10.0}}]
  - name: judge
    deployments: [{provider: openai, base_url: "http://j.invalid/v1", model: j,
                   pricing: {input_per_mtok: 2.0, output_per_mtok: 2.0}}]
"""


def body(text: str, logprobs: list[float] | None = None) -> dict[str, Any]:
    lp = {"content": [{"token": "t", "logprob": v} for v in logprobs]} if logprobs is not None else None
    usage = {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}
    return {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                                    "finish_reason": "stop"}], "usage": usage}  # fmt: skip


SCHEMA_REQ = {
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": {"type": "object", "required": ["name"],
                                                "properties": {"name": {"type": "string"}}}},
    }
}  # fmt: skip


def test_logprob_check() -> None:
    check = LogprobCheck(kind="logprob", min=-0.3)
    assert checks.mean_logprob(body("a", [-0.1, -0.3])) == pytest.approx(-0.2)
    assert checks.check_logprob(check, body("a", [-0.1, -0.3])).passed
    assert not checks.check_logprob(check, body("a", [-0.5, -0.3])).passed
    assert checks.check_logprob(check, body("a")).passed  # no logprobs returned: cannot judge


def test_json_schema_check() -> None:
    check = JsonSchemaCheck(kind="json_schema")
    assert checks.check_json_schema(check, body('{"name": "x"}'), SCHEMA_REQ).passed
    assert not checks.check_json_schema(check, body('{"nom": "x"}'), SCHEMA_REQ).passed
    assert not checks.check_json_schema(check, body('{"name": 3}'), SCHEMA_REQ).passed
    assert not checks.check_json_schema(check, body("sure! {"), SCHEMA_REQ).passed
    assert checks.check_json_schema(check, body("[1]"), {}).passed
    assert not checks.check_json_schema(check, body("[1]"), {"response_format": {"type": "json_object"}}).passed


def test_regex_check_and_answer_text() -> None:
    check = RegexCheck(kind="regex", pattern=r"^\d+$")
    assert checks.check_regex(check, body("42")).passed
    assert not checks.check_regex(check, body("forty-two")).passed
    assert checks.answer_text({"choices": [{"text": "legacy"}]}) == "legacy"
    assert checks.answer_text({}) == ""


@pytest.mark.parametrize(
    ("reply", "score"),
    [("SCORE: 8", 8.0), ("score: 7.5/10", 7.5), ("9", 9.0), ("I'd say 6/10.", 6.0), ("between 3 and 4", None),
     ("SCORE: 11", None), ("no idea", None)],
)  # fmt: skip
def test_parse_score(reply: str, score: float | None) -> None:
    assert checks.parse_score(reply) == score


def test_grading_messages_carry_request_and_answer() -> None:
    messages = checks.grading_messages({"messages": [{"role": "user", "content": "2+2?"}]}, "4")
    assert (
        messages[0]["role"] == "system" and "2+2?" in messages[1]["content"] and "ANSWER:\n4" in messages[1]["content"]
    )


def test_cascade_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"step 0 \(cheap\) has no checks"):
        parse_config(MODELS + "routers:\n  - {name: c, kind: cascade, steps: [{model: cheap}, {model: smart}]}\n")
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        parse_config(
            MODELS + "routers:\n  - {name: c, kind: cascade, steps: [{model: cheap, checks: "
            "[{kind: verifier, model: nope, min_score: 7}]}, {model: smart}]}\n"
        )
    with pytest.raises(ConfigError, match="invalid pattern"):
        parse_config(
            MODELS + "routers:\n  - {name: c, kind: cascade, steps: [{model: cheap, checks: "
            "[{kind: regex, pattern: '('}]}, {model: smart}]}\n"
        )


class Script:
    """The rest of the chain: answers per model from a script; records each call's body."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, ctx: CallContext) -> Response:
        self.calls.append(ctx.body)
        answer = self.answers[ctx.model].pop(0)
        if isinstance(answer, Exception):
            raise answer
        config_deps = {m.name: m.deployments[0] for m in STAGE_CONFIG.models}
        ctx.deployment = config_deps[ctx.model]
        ctx.route = "primary"
        return Completion(answer, Usage.from_openai(answer["usage"]))


STAGE_CONFIG = parse_config(
    MODELS
    + """
routers:
  - name: casc
    kind: cascade
    steps:
      - {model: cheap, checks: [{kind: regex, pattern: '^\\d+$'}, {kind: logprob, min: -0.5}]}
      - {model: cheap, checks: [{kind: verifier, model: judge, min_score: 7}]}
      - {model: smart}
"""
)


def ctx_for(stream: bool = False, extra: dict[str, Any] | None = None) -> CallContext:
    req = {"model": "casc", "messages": [{"role": "user", "content": "2+2?"}], "stream": stream, **(extra or {})}
    return CallContext(request_id="r", endpoint=Endpoint.CHAT, body=req, model="casc", stream=stream)


async def test_cascade_accepts_first_passing_step_and_strips_added_logprobs() -> None:
    script = Script({"cheap": [body("4", [-0.1])]})
    ctx = ctx_for()
    response = await PolicyStage(STAGE_CONFIG)(ctx, script)
    assert isinstance(response, Completion)
    assert response.body["choices"][0]["message"]["content"] == "4"
    assert response.body["choices"][0]["logprobs"] is None  # the client did not ask for them
    assert script.calls[0]["logprobs"] is True and script.calls[0]["stream"] is False
    assert ctx.model == "casc" and ctx.route == "cascade:casc->cheap@0/primary" and ctx.extra_cost_usd == 0.0
    assert ctx.baseline_deployment == STAGE_CONFIG.models[1].deployments[0]  # smart: the dearest step
    assert [a["passed"] for a in ctx.decisions["cascade"]] == [True]


async def test_cascade_falls_through_with_costs_and_streams_the_accepted_answer() -> None:
    script = Script(
        {
            "cheap": [body("four", [-0.1]), body("4ish")],
            "judge": [body("SCORE: 3")],
            "smart": [body("4")],
        }
    )
    ctx = ctx_for(stream=True, extra={"stream_options": {"include_usage": True}})
    response = await PolicyStage(STAGE_CONFIG)(ctx, script)
    assert isinstance(response, Stream)
    chunks = [c async for c in response.chunks]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "4"
    assert chunks[-1]["usage"]["total_tokens"] == 200
    assert [a["passed"] for a in ctx.decisions["cascade"]] == [False, False, True]  # no checks: accepted
    assert "regex: no match" in ctx.decisions["cascade"][0]["reason"]
    assert "verifier: 3 vs min 7" in ctx.decisions["cascade"][1]["reason"]
    # two rejected cheap answers (200 tokens at $1/M each) and one verifier call (200 tokens at $2/M)
    assert ctx.extra_cost_usd == pytest.approx(2 * 200e-6 + 400e-6)
    assert ctx.stream and ctx.body["stream"] is True and ctx.model == "casc"
    assert all("stream_options" not in c for c in script.calls)
    assert ctx.route is not None and ctx.route.startswith("cascade:casc->smart@2")


async def test_cascade_moves_past_upstream_errors_and_raises_client_errors() -> None:
    script = Script({"cheap": [GatewayError(503, "down", "server_error"), body("x")], "judge": [body("8")]})
    ctx = ctx_for()
    response = await PolicyStage(STAGE_CONFIG)(ctx, script)
    assert isinstance(response, Completion) and ctx.decisions["cascade"][0]["reason"] == "error 503"
    bad = Script({"cheap": [GatewayError(400, "bad", "invalid_request_error")]})
    with pytest.raises(GatewayError):
        await PolicyStage(STAGE_CONFIG)(ctx_for(), bad)
