"""The stage itself: a failing transform leaves the request as it came, says so and is counted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tokenomy.config import parse_config
from tokenomy.config.optimize import OptimizeConfig
from tokenomy.optimize import compress_context, minify_json
from tokenomy.optimize.stage import OptimizeStage
from tokenomy.pipeline.context import CallContext, Completion, Endpoint
from tokenomy.pipeline.route import ModelTable
from tokenomy.telemetry.metrics import OPTIMIZE_FAILURES as FAILURES

CONFIG = parse_config(
    "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: gpt-4o-mini}]\n"
)


async def run(stage: OptimizeStage, body: dict[str, Any], headers: dict[str, str] | None = None) -> CallContext:
    ctx = CallContext(request_id="r", endpoint=Endpoint.CHAT, body=body, model="m", headers=headers or {})

    async def terminal(ctx: CallContext) -> Completion:
        return Completion({"choices": []})

    await stage(ctx, terminal)
    return ctx


def boom(*args: Any) -> Any:
    raise RuntimeError("boom")


async def test_a_failing_compressor_passes_the_original_request_and_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compress_context, "apply", boom)
    stage = OptimizeStage(OptimizeConfig(lossless=False), ModelTable(CONFIG))
    body = {"model": "m", "messages": [{"role": "user", "content": "word " * 5000 + "\n\nwhich?"}]}
    original = copy.deepcopy(body)
    before = FAILURES.labels("compress")._value.get()
    ctx = await run(stage, body, {"x-tokenomy-compress": "0.25"})
    assert ctx.body == original and ctx.removed_prompt_tokens == 0
    assert ctx.decisions["optimize"] == "none"
    assert "compress failed" in ctx.decisions["optimize_warning"]
    assert FAILURES.labels("compress")._value.get() == before + 1


async def test_a_failing_lossless_transform_leaves_the_others_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minify_json, "apply", boom)
    stage = OptimizeStage(OptimizeConfig(), ModelTable(CONFIG))
    ctx = await run(stage, {"model": "m", "messages": [{"role": "user", "content": "hi   \n\n\n\nthere"}]})
    assert ctx.body["messages"][0]["content"] == "hi\n\nthere"
    assert ctx.decisions["optimize"].startswith("whitespace; tokens=")
    assert "minify_json failed" in ctx.decisions["optimize_warning"]


async def test_non_chat_and_untouched_requests_cost_no_count() -> None:
    stage = OptimizeStage(OptimizeConfig(), ModelTable(CONFIG))
    ctx = await run(stage, {"model": "m", "messages": [{"role": "user", "content": "Hi?"}]})
    assert ctx.decisions["optimize"] == "none" and ctx.removed_prompt_tokens == 0
    assert ctx.prompt_cache is None  # no Anthropic deployment: no breakpoint plan


async def test_the_compress_mark_never_goes_upstream_whatever_runs() -> None:
    stage = OptimizeStage(OptimizeConfig(), ModelTable(CONFIG))
    part = {"type": "text", "text": "context   \n\n\n\nmore", "compress": True}
    for headers in ({}, {"x-tokenomy-optimize": "off"}, {"x-tokenomy-compress": "0.5"}):
        ctx = await run(stage, {"model": "m", "messages": [{"role": "user", "content": [part]}]}, headers)
        assert "compress" not in ctx.body["messages"][0]["content"][0]


async def test_a_long_system_prompt_is_not_compressed_unless_marked() -> None:
    stage = OptimizeStage(OptimizeConfig(lossless=False), ModelTable(CONFIG))
    rules = "\n".join(f"Rule {i}: always answer about topic {i} politely." for i in range(400))
    body = {"model": "m", "messages": [{"role": "system", "content": rules}, {"role": "user", "content": "topic 7?"}]}
    ctx = await run(stage, body, {"x-tokenomy-compress": "0.25"})
    assert ctx.body["messages"][0]["content"] == rules and ctx.decisions["optimize"] == "none"


async def test_a_native_pass_through_is_kept_unless_an_opt_in_transform_changed_the_request() -> None:
    from dataclasses import dataclass

    @dataclass(slots=True)
    class NativeContext(CallContext):  # the shape the native pass-through gives the context
        native: Any = None

    stage = OptimizeStage(OptimizeConfig(), ModelTable(CONFIG))

    async def terminal(ctx: CallContext) -> Completion:
        return Completion({"choices": []})

    text = "word   \n\n\n\n" * 3
    ctx = NativeContext(request_id="r", endpoint=Endpoint.CHAT, body={"model": "m", "messages": [
        {"role": "user", "content": text}]}, model="m", native=object())  # fmt: skip
    await stage(ctx, terminal)
    assert ctx.native is not None and ctx.body["messages"][0]["content"] == text  # lossless skipped: nothing to fake
    long = "\n".join(f"line {i} about topic {i % 7}" for i in range(600)) + "\n\ntopic 3?"
    body = {"model": "m", "messages": [{"role": "user", "content": long}]}
    headers = {"x-tokenomy-compress": "0.25"}
    ctx = NativeContext(request_id="r", endpoint=Endpoint.CHAT, body=body, model="m", headers=headers, native=object())
    await stage(ctx, terminal)
    assert ctx.native is None and len(ctx.body["messages"][0]["content"]) < len(long) / 2
