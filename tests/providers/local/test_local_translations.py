"""Pure parts of the local backend: request checks, stop sequences, response shapes, embedding I/O."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Endpoint
from tokenomy.providers.local import embedding_api
from tokenomy.providers.local.catalog import CATALOG, catalog, lookup
from tokenomy.providers.local.embeddings import _length_groups
from tokenomy.providers.local.logits import TokenLogprob
from tokenomy.providers.local.params import parse_chat, parse_completion
from tokenomy.providers.local.responses import ResponseBuilder
from tokenomy.providers.local.textstream import TextAssembler
from tokenomy.tokens.decode import decoder

VOCAB = 49152
USER = [{"role": "user", "content": "hi"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": USER, **extra}


# --- chat and completion parameters ---------------------------------------------------------


def test_chat_defaults_and_honoured_params() -> None:
    prompt, params = parse_chat(chat(), 256, VOCAB)
    assert prompt.messages == ({"role": "user", "content": "hi"},)
    assert params.max_tokens == 256 and params.temperature == 0.2 and params.top_logprobs is None
    _, params = parse_chat(
        chat(
            temperature=0,
            top_p=0.5,
            max_completion_tokens=7,
            max_tokens=9,
            stop="x",
            seed=3,
            logprobs=True,
            top_logprobs=2,
            logit_bias={"5": -100},
            presence_penalty=1,
        ),
        256,
        VOCAB,
    )
    assert (params.temperature, params.top_p, params.max_tokens) == (0.0, 0.5, 7)
    assert params.stop == ("x",) and params.seed == 3 and params.top_logprobs == 2
    assert params.logit_bias == {5: -100.0} and params.presence_penalty == 1.0


def test_chat_content_parts_and_developer_role() -> None:
    body = chat(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None},
        ]
    )
    prompt, _ = parse_chat(body, 16, VOCAB)
    assert prompt.messages == (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": ""},
    )


def test_json_modes_become_grammars() -> None:
    _, params = parse_chat(chat(response_format={"type": "json_object"}), 16, VOCAB)
    assert params.grammar and "root" in params.grammar
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    _, params = parse_chat(chat(response_format={"type": "json_schema", "json_schema": {"schema": schema}}), 16, VOCAB)
    assert params.grammar and "age" in params.grammar
    _, params = parse_chat(chat(response_format={"type": "text"}), 16, VOCAB)
    assert params.grammar is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"seed": "x"}, "seed"),
        ({"logit_bias": {"999999": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 500}}, "logit_bias"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0]"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ],
)
def test_chat_refusals_name_the_param(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        parse_chat(chat(**extra), 16, VOCAB)
    assert info.value.status == 400
    assert info.value.param == param


def test_completion_prompts() -> None:
    prompt, params = parse_completion({"prompt": "Once"}, 32, VOCAB)
    assert prompt.text == "Once" and params.max_tokens == 32 and params.temperature == 0.8
    prompt, _ = parse_completion({"prompt": [1, 2, 3]}, 32, VOCAB)
    assert prompt.tokens == (1, 2, 3)
    prompt, _ = parse_completion({"prompt": ["only one"]}, 32, VOCAB)
    assert prompt.text == "only one"
    _, params = parse_completion({"prompt": "x", "logprobs": 0, "max_tokens": 0}, 32, VOCAB)
    assert params.top_logprobs == 0 and params.max_tokens == 0


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [VOCAB + 1]}, "prompt"),
        ({"prompt": {"x": 1}}, "prompt"),
        ({"echo": True}, "echo"),
        ({"suffix": "x"}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": 6}, "logprobs"),
        ({"n": 3}, "n"),
    ],
)
def test_completion_refusals_name_the_param(extra: dict[str, Any], param: str) -> None:
    body = {"prompt": "x", **extra}
    with pytest.raises(GatewayError) as info:
        parse_completion(body, 16, VOCAB)
    assert info.value.status == 400 and info.value.param == param


# --- text assembly ---------------------------------------------------------------------------


def feed_all(assembler: TextAssembler[int], pieces: list[bytes]) -> str:
    out = "".join(assembler.feed(p)[0] for p in pieces)
    return out + assembler.flush()[0]


def test_utf8_split_across_tokens_is_reassembled() -> None:
    data = "héllo 🚀".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    assembler: TextAssembler[int] = TextAssembler()
    deltas = [assembler.feed(p)[0] for p in pieces]
    assert "".join(deltas) + assembler.flush()[0] == "héllo 🚀"
    assert all("\ufffd" not in d for d in deltas)


def test_stop_sequence_across_tokens_is_cut_and_never_streamed() -> None:
    assembler: TextAssembler[int] = TextAssembler(("END",))
    deltas = [assembler.feed(p)[0] for p in [b"Hello E", b"N", b"D and more"]]
    assert "".join(deltas) == "Hello "
    assert assembler.stopped and assembler.visible() == "Hello "
    assert all("E" not in d for d in deltas)


def test_held_back_prefix_is_released_when_it_does_not_complete() -> None:
    assembler: TextAssembler[int] = TextAssembler(("END",))
    assert assembler.feed(b"go E")[0] == "go "
    assert assembler.feed(b"ast")[0] == "East"
    assert feed_all(TextAssembler(("###",)), [b"a#", b"#"]) == "a##"


def test_items_are_released_with_their_text() -> None:
    assembler: TextAssembler[int] = TextAssembler(("X",))
    assert assembler.feed(b"ab", 1) == ("ab", [1])
    assert assembler.feed(b"cX", 2) == ("c", [2])
    assert assembler.feed(b"d", 3) == ("", [])


# --- response shapes ---------------------------------------------------------------------------


def entry(token: str, logprob: float) -> TokenLogprob:
    return TokenLogprob(token, list(token.encode()), logprob, [(token, list(token.encode()), logprob)])


def test_chat_bodies() -> None:
    builder = ResponseBuilder(chat=True, model="alias", logprobs=True)
    body = builder.whole("hi", [entry("hi", -0.1)], "stop", 5, 1)
    assert body["object"] == "chat.completion" and body["model"] == "alias"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None}
    assert body["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["token"] == "hi"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    first = builder.first_chunk()
    assert first is not None and first["choices"][0]["delta"]["role"] == "assistant"
    assert builder.final_chunk("length")["choices"][0]["finish_reason"] == "length"
    usage = builder.usage_chunk(5, 1)
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 6
    assert {builder.id} == {first["id"], usage["id"]} and builder.id.startswith("chatcmpl-")


def test_completion_bodies_and_legacy_logprobs() -> None:
    builder = ResponseBuilder(chat=False, model="m", logprobs=True)
    body = builder.whole("ab", [entry("a", -1.0), entry("b", -2.0)], "length", 3, 2)
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "ab"
    assert body["choices"][0]["logprobs"] == {
        "tokens": ["a", "b"],
        "token_logprobs": [-1.0, -2.0],
        "top_logprobs": [{"a": -1.0}, {"b": -2.0}],
        "text_offset": [0, 1],
    }
    assert builder.first_chunk() is None
    builder.delta_chunk("a", [entry("a", -1.0)])
    assert builder.delta_chunk("b", [entry("b", -2.0)])["choices"][0]["logprobs"]["text_offset"] == [1]


# --- embeddings I/O --------------------------------------------------------------------------


def test_base64_is_little_endian_float32_like_openai() -> None:
    vector = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    encoded = embedding_api.encode_vector(vector, "base64")
    assert isinstance(encoded, str)
    assert np.array_equal(embedding_api.decode_base64(encoded), vector)
    assert embedding_api.encode_vector(vector, "float") == [0.5, -1.25, 3.0]


CL100K = decoder("cl100k_base")


def test_embedding_inputs() -> None:
    parse = embedding_api.parse_input
    hello = [15339, 1917]  # "hello world" in cl100k_base, the client's tokenizer
    assert parse("a", CL100K) == ["a"]
    assert parse(["a", "b"], CL100K) == ["a", "b"]
    assert parse(hello, CL100K) == ["hello world"]
    assert parse([hello, [15339]], CL100K) == ["hello world", "hello"]
    assert parse(hello, decoder("o200k_base")) != ["hello world"]  # the same ids in another vocabulary
    request = embedding_api.parse_request({"input": "a", "encoding_format": "base64", "dimensions": 384}, CL100K)
    assert request.encoding_format == "base64"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", ""]}, "input[1]"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [1, 10**7]}, "input"),
        ({"input": [-1]}, "input"),
        ({"input": [[1], []]}, "input[1]"),
        ({"input": [[1], [True]]}, "input[1]"),
        ({"input": {"text": "a"}}, "input"),
        ({"input": None}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "dimensions": 128}, "dimensions"),
    ],
)
def test_bad_embedding_requests_name_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        embedding_api.parse_request(body, CL100K)
    assert info.value.status == 400 and info.value.param == param


def test_embedding_response_shape() -> None:
    body = embedding_api.response_body("e", [np.ones(2, dtype=np.float32)], 4, "float")
    assert body["object"] == "list" and body["data"][0] == {"object": "embedding", "index": 0, "embedding": [1.0, 1.0]}
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    json.dumps(body)


def test_length_groups_cover_every_input_once_at_the_least_cost() -> None:
    lengths = [3, 200, 4, 5, 9, 100, 3]
    groups = _length_groups(lengths, run_cost=20)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    # the short ones share a run, the long ones each get their own: no 3-token input padded to 100
    assert [sorted(lengths[i] for i in g) for g in groups] == [[3, 3, 4, 5, 9], [100], [200]]


def test_length_groups_merge_when_a_run_costs_more_than_the_padding() -> None:
    assert len(_length_groups([10, 12, 14, 16], run_cost=20)) == 1
    assert len(_length_groups([10, 12, 14, 16], run_cost=0)) == 4
    assert _length_groups([]) == []


def test_catalog() -> None:
    assert lookup("smollm2-135m-instruct").supports(Endpoint.CHAT)
    assert not lookup("all-minilm-l6-v2").supports(Endpoint.CHAT)
    assert {m["id"] for m in catalog()} == set(CATALOG)
    with pytest.raises(ValueError, match="embedded models"):
        lookup("gpt-5")


def test_embedding_threads_fill_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenomy.providers.local import provider

    monkeypatch.setattr(provider, "usable_cpus", lambda: 4)
    assert provider.embedding_threads(None, None) == (1, 4)  # one batch at a time on every CPU
    assert provider.embedding_threads(None, 2) == (1, 2)
    assert provider.embedding_threads(4, None) == (4, 1)  # one-thread batches, one per CPU
    assert provider.embedding_threads(2, None) == (2, 2)
    assert provider.embedding_threads(3, 3) == (3, 3)  # both set: as given
    monkeypatch.setattr(provider, "usable_cpus", lambda: 1)
    assert provider.embedding_threads(2, None) == (2, 1)
