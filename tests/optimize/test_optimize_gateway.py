"""The optimize stage through a real gateway, with the official clients and fake upstreams that record what they got."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from tests.conftest import proxy_config
from tests.fakes.anthropic_upstream import AnthropicFake
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.cli import main
from tokenomy.pricing.prices import lookup
from tokenomy.telemetry.metrics import OPTIMIZE_TRUNCATED as TRUNCATED

OPTIMIZE = """
optimize:
  prompt_cache_min_tokens: 200
  rules:
    - {task: rag, compress_ratio: 4, compress_min_tokens: 200}
    - {task: chatty, history_budget_tokens: 120, history_keep_last: 2}
    - {task: recap, history_budget_tokens: 120, history_keep_last: 2, history_summary_model: fast}
    - {task: capped, max_tokens: 3}
    - {task: examples, few_shot_k: 2}
"""
TOPICS = ["weather", "football", "cooking", "gardening", "movies"]


@pytest.fixture(scope="module")
async def gw(
    openai_fake: OpenAIFake, anthropic_fake: AnthropicFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    path = tmp_path_factory.mktemp("optimize") / "ledger.db"
    config = proxy_config(openai_fake.base_url, anthropic_fake.base_url) + OPTIMIZE
    config += f'ledger: {{path: "{path}", flush_interval_ms: 20}}\n'
    async with running_gateway(config) as running:
        yield running, path


async def row(gw: tuple[RunningGateway, Path], request_id: str) -> dict[str, Any]:
    running, path = gw
    await running.flush_ledger()
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    found = [dict(r) for r in conn.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,))]
    conn.close()
    assert len(found) == 1
    return found[0]


def oai(gw: tuple[RunningGateway, Path]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw[0].v1, api_key="unused", max_retries=0)


def tokens(header: str) -> tuple[int, int]:
    match = re.search(r"tokens=(\d+)->(\d+)", header)
    assert match is not None, header
    return int(match.group(1)), int(match.group(2))


def long_context() -> str:
    lines = [f"Note {i}: the team chatted about {TOPICS[i % 5]} and nothing else of note." for i in range(150)]
    lines[90] = "Note 90: the invoice number for the Zurich office is 44-871, due in March."
    return "\n".join(lines)


async def test_pretty_json_tool_result_reaches_the_upstream_minified(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    result = json.dumps({"rows": [{"id": i, "name": f"item {i}"} for i in range(20)]}, indent=4)
    messages: list[Any] = [
        {"role": "user", "content": "list the items"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "items", "arguments": '{\n  "all": true\n}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]  # fmt: skip
    raw = await oai(gw).chat.completions.with_raw_response.create(model="fast", messages=messages)
    sent = openai_fake.last.body["messages"]
    assert json.loads(sent[2]["content"]) == json.loads(result) and len(sent[2]["content"]) < len(result) / 2
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"all":true}'
    header = raw.headers["x-tokenomy-optimize"]
    assert header.startswith("minify_json")
    before, after = tokens(header)
    assert after < before
    record = await row(gw, raw.headers["x-request-id"])
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None
    assert record["saved_compression_usd"] == pytest.approx((before - after) * price.input)
    assert record["baseline_cost_usd"] == pytest.approx(record["cost_usd"] + record["saved_compression_usd"])


async def test_optimize_off_sends_the_request_exactly_as_it_came(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    messages = [{"role": "user", "content": '{\n  "a": 1\n}   \n\n\n\nend'}]
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast", messages=messages, extra_headers={"x-tokenomy-optimize": "off"}
    )
    assert openai_fake.last.body["messages"] == messages
    assert raw.headers["x-tokenomy-optimize"] == "off"
    assert (await row(gw, raw.headers["x-request-id"]))["saved_compression_usd"] == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_compress_header_shrinks_the_context_and_the_ledger_credits_compression(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake, stream: bool
) -> None:
    context = long_context()
    question = "What is the invoice number for the Zurich office?"
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast",
        messages=[{"role": "system", "content": "Answer from the notes."},
                  {"role": "user", "content": f"{context}\n\n{question}"}],
        extra_headers={"x-tokenomy-compress": "0.25", "x-tokenomy-task": "plain"},
        stream=stream,
    )  # fmt: skip
    if stream:
        async for _chunk in raw.parse():
            pass
    sent = openai_fake.last.body["messages"][-1]["content"]
    assert sent.endswith(question) and "44-871" in sent and "Zurich" in sent
    assert len(sent.split()) < len(context.split()) / 3
    header = raw.headers["x-tokenomy-optimize"]
    assert "compress(condensed 4x)" in header
    before, after = tokens(header)
    assert after < before / 2
    record = await row(gw, raw.headers["x-request-id"])
    price = lookup("gpt-4o-mini", "openai")
    assert price is not None
    assert record["saved_compression_usd"] == pytest.approx((before - after) * price.input)
    assert record["saved_compression_usd"] > 0


async def test_a_task_rule_turns_compression_on(gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake) -> None:
    parts = [{"type": "text", "text": long_context(), "compress": True}, {"type": "text", "text": "Zurich invoice?"}]
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": parts}], extra_headers={"x-tokenomy-task": "rag"}
    )  # type: ignore[list-item]
    sent = openai_fake.last.body["messages"][0]["content"]
    assert all("compress" not in part for part in sent)  # the mark never goes upstream
    assert "44-871" in sent[0]["text"] and len(sent[0]["text"]) < len(parts[0]["text"]) / 3  # type: ignore[arg-type]
    assert "compress" in raw.headers["x-tokenomy-optimize"]


@pytest.mark.parametrize("value", ["0", "1.5", "lots", "-0.2", "0.001"])
async def test_a_bad_compress_header_is_a_clear_400(gw: tuple[RunningGateway, Path], value: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai(gw).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-tokenomy-compress": value}
        )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["param"] == "x-tokenomy-compress" and "share of compressible text" in body["message"]


async def test_a_bad_optimize_header_is_a_400_in_the_anthropic_format(gw: tuple[RunningGateway, Path]) -> None:
    client = anthropic.AsyncAnthropic(base_url=gw[0].url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(
            model="claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-tokenomy-optimize": "maybe"},
        )  # fmt: skip
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "x-tokenomy-optimize" in body["error"]["message"]


async def test_anthropic_prompt_cache_breakpoints_are_placed_and_the_cache_read_is_priced(
    gw: tuple[RunningGateway, Path], anthropic_fake: AnthropicFake
) -> None:
    system = ("You are the support bot of Tokenomy. " + "Rule: answer politely and briefly. " * 60).strip()
    ask = [{"role": "system", "content": system}, {"role": "user", "content": "Hello there"}]
    task = {"x-tokenomy-task": "support"}
    first = await oai(gw).chat.completions.with_raw_response.create(model="claude", messages=ask, extra_headers=task)
    assert "cache_control" not in json.dumps(anthropic_fake.last.body)  # a prefix seen once may never repeat
    assert first.headers["x-tokenomy-optimize"] == "none"
    second = await oai(gw).chat.completions.with_raw_response.create(model="claude", messages=ask, extra_headers=task)
    assert anthropic_fake.last.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert second.headers["x-tokenomy-optimize"] == "prompt_cache(1)"
    client = anthropic.AsyncAnthropic(base_url=gw[0].url, api_key="unused", max_retries=0)
    third = await client.messages.with_raw_response.create(
        model="claude",
        max_tokens=50,
        system=system,
        messages=[{"role": "user", "content": "Hello there"}],
        extra_headers=task,
    )
    assert anthropic_fake.last.body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    price = lookup("claude-3-5-haiku-latest", "anthropic")
    assert price is not None and price.cache_write is not None and price.cached_input < price.input
    plain, written, read = [await row(gw, r.headers["x-request-id"]) for r in (first, second, third)]
    assert plain["cached_tokens"] == 0 and plain["saved_compression_usd"] == 0
    assert written["cached_tokens"] == 0 and written["saved_compression_usd"] < 0  # the write premium
    assert written["cost_usd"] > plain["cost_usd"]
    prefix = len(system.split())
    assert read["cached_tokens"] == prefix
    fresh = read["prompt_tokens"] - prefix
    expected = fresh * price.input + prefix * price.cached_input + read["completion_tokens"] * price.output
    assert read["cost_usd"] == pytest.approx(expected)
    assert read["saved_compression_usd"] == pytest.approx(prefix * (price.input - price.cached_input))
    assert read["baseline_cost_usd"] == pytest.approx(read["cost_usd"] + read["saved_compression_usd"])
    # the report shows the cached-input share per task
    config = gw[1].parent / "report.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
        f"ledger: {{path: '{gw[1]}'}}\n"
    )
    result = CliRunner().invoke(main, ["report", "--config", str(config), "--by", "task", "--format", "json"])
    assert result.exit_code == 0, result.output
    support = next(g for g in json.loads(result.output) if g["group"] == "support")
    total = plain["prompt_tokens"] + written["prompt_tokens"] + read["prompt_tokens"]
    assert support["cached_tokens"] == prefix
    assert support["cached_input_share"] == pytest.approx(prefix / total)


async def test_history_rule_trims_the_middle_and_keeps_tool_pairs(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}]
    for i in range(8):
        messages += [{"role": "user", "content": f"question {i} " + "w " * 20},
                     {"role": "assistant", "content": f"answer {i} " + "w " * 20}]  # fmt: skip
    messages += [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "wx", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]  # fmt: skip
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast", messages=messages, extra_headers={"x-tokenomy-task": "chatty"}
    )
    sent = openai_fake.last.body["messages"]
    assert sent[0] == messages[0] and sent[-3:] == messages[-3:]
    assert len(sent) < len(messages)
    assert "history(-" in raw.headers["x-tokenomy-optimize"]


async def test_output_cap_applies_when_the_client_sets_none_and_truncations_are_counted(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    before = TRUNCATED.labels("capped")._value.get()
    reply = await oai(gw).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "one two three four five six"}],
        extra_headers={"x-tokenomy-task": "capped"},
    )  # fmt: skip
    assert openai_fake.last.body["max_tokens"] == 3
    assert reply.choices[0].finish_reason == "length"
    assert TRUNCATED.labels("capped")._value.get() == before + 1
    await oai(gw).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "one two"}], max_tokens=50,
        extra_headers={"x-tokenomy-task": "capped"},
    )  # fmt: skip
    assert openai_fake.last.body["max_tokens"] == 50  # the client's own limit wins


async def test_few_shot_rule_keeps_the_most_similar_demonstrations(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    demos = [
        "Question: How many legs do 3 dogs have?\nAnswer: 12",
        "Question: What is the capital of Italy?\nAnswer: Rome",
        "Question: How many legs do 2 cats have?\nAnswer: 8",
        "Question: Who wrote Hamlet?\nAnswer: Shakespeare",
        "Question: What is the capital of Spain?\nAnswer: Madrid",
    ]
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast",
        messages=[{"role": "system", "content": "\n\n".join(demos)},
                  {"role": "user", "content": "How many legs do 4 spiders have?"}],
        extra_headers={"x-tokenomy-task": "examples"},
    )  # fmt: skip
    kept = openai_fake.last.body["messages"][0]["content"].split("\n\n")
    assert kept == [demos[0], demos[2]]  # the two about legs, in their original order
    assert "few_shot(2/5)" in raw.headers["x-tokenomy-optimize"]


async def test_a_compression_that_would_keep_nothing_passes_the_text_unchanged_with_a_warning(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    # one huge line: no unit fits a 50x budget
    context = " ".join(f"word{i}" for i in range(3000))
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast",
        messages=[{"role": "user", "content": f"{context}\n\nwhich word?"}],
        extra_headers={"x-tokenomy-compress": "0.02"},
    )
    assert openai_fake.last.body["messages"][0]["content"] == f"{context}\n\nwhich word?"
    assert "compress skipped" in raw.headers["x-tokenomy-optimize-warning"]


async def test_dropped_turns_are_summarized_by_the_configured_model_and_the_summary_is_recorded(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}]
    for i in range(8):
        messages += [{"role": "user", "content": f"My order number is A{i}00. " + "w " * 20},
                     {"role": "assistant", "content": f"Noted A{i}00. " + "w " * 20}]  # fmt: skip
    messages.append({"role": "user", "content": "Which orders did I mention?"})
    raw = await oai(gw).chat.completions.with_raw_response.create(
        model="fast", messages=messages, extra_headers={"x-tokenomy-task": "recap"}
    )
    summary_request, main_request = openai_fake.requests[-2].body, openai_fake.requests[-1].body
    assert summary_request["messages"][0]["content"].startswith("Summarize these earlier turns")
    assert "user: My order number is A000." in summary_request["messages"][1]["content"]
    sent = main_request["messages"]
    assert sent[0] == messages[0] and sent[-1] == messages[-1]
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith("Summary of ")
    assert "A000" in sent[1]["content"]  # the fake echoes the transcript back as its "summary"
    assert len(sent) < len(messages)
    record = await row(gw, raw.headers["x-request-id"] + ".summary")
    assert record["task"] == "history-summary" and record["status"] == 200 and record["cost_usd"] > 0


def test_an_unknown_summary_model_is_a_config_error() -> None:
    from tokenomy.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="history_summary_model"):
        parse_config(
            "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
            "optimize: {rules: [{task: t, history_summary_model: nope}]}\n"
        )
