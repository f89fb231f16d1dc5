"""Generation tokens/s of SmolLM2-135M-Instruct: llama-cpp-python directly against the gateway."""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

from bench.local.quiet import QUIET

from tokenomy.providers.local.catalog import GENERATION_MODEL
from tokenomy.providers.local.generation import default_model_path

MESSAGES: Any = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
EOS_BAN: dict[str, int] = {"2": -100, "0": -100}  # <|im_end|> and <|endoftext|>


class DirectModel:
    """llama-cpp-python called directly: create_chat_completion in this process's main thread."""

    def __init__(self, threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(default_model_path()), n_ctx=2048, n_threads=threads, verbose=False)
        self.bias = {int(k): float(v) for k, v in EOS_BAN.items()}
        self.llm.create_chat_completion(MESSAGES, max_tokens=4, temperature=0)  # warm-up

    def whole(self, max_tokens: int) -> float:
        started = time.perf_counter()
        result: Any = self.llm.create_chat_completion(
            MESSAGES, max_tokens=max_tokens, temperature=0, logit_bias=self.bias
        )
        return float(result["usage"]["completion_tokens"]) / (time.perf_counter() - started)

    def stream(self, max_tokens: int) -> float:
        started = time.perf_counter()
        for _chunk in self.llm.create_chat_completion(
            MESSAGES, max_tokens=max_tokens, temperature=0, logit_bias=self.bias, stream=True
        ):
            pass
        return max_tokens / (time.perf_counter() - started)  # EOS is banned: exactly max_tokens

    def close(self) -> None:
        self.llm.close()


class GatewayModel:
    """The same request through the gateway with the official openai client."""

    def __init__(self, base_url: str) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
        self.client.chat.completions.create(model=GENERATION_MODEL, messages=MESSAGES, max_tokens=4, temperature=0)

    def whole(self, max_tokens: int) -> float:
        started = time.perf_counter()
        result = self.client.chat.completions.create(
            model=GENERATION_MODEL,
            messages=MESSAGES,
            max_tokens=max_tokens,
            temperature=0,
            logit_bias=EOS_BAN,
        )
        assert result.usage is not None
        return result.usage.completion_tokens / (time.perf_counter() - started)

    def stream(self, max_tokens: int) -> float:
        started = time.perf_counter()
        tokens = 0
        for chunk in self.client.chat.completions.create(
            model=GENERATION_MODEL,
            messages=MESSAGES,
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            logit_bias=EOS_BAN,
        ):
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return tokens / (time.perf_counter() - started)

    def close(self) -> None:
        self.client.close()


def generation(
    direct: DirectModel, via: GatewayModel | None, runs: int, max_tokens: int
) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    """Runs interleaved (direct, gateway, direct, ...) so that machine noise hits both sides alike."""
    d: dict[str, list[float]] = {"whole": [], "stream": []}
    g: dict[str, list[float]] = {"whole": [], "stream": []}
    for _ in range(runs):
        for mode in ("whole", "stream"):
            d[mode].append(QUIET.run(partial(getattr(direct, mode), max_tokens)))
            if via is not None:
                g[mode].append(QUIET.run(partial(getattr(via, mode), max_tokens)))
    return d, (g if via is not None else None)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def generation_table(direct: dict[str, list[float]], via: dict[str, list[float]] | None) -> list[str]:
    lines = [
        "| mode | direct llama-cpp-python (tok/s) | through the gateway (tok/s) | gateway / direct |",
        "|---|---:|---:|---:|",
    ]
    for mode in ("whole", "stream"):
        d = med(direct[mode])
        g = med(via[mode]) if via else float("nan")
        ratio = f"{100 * g / d:.1f}%" if via else "n/a"
        label = "non-streaming" if mode == "whole" else "streaming"
        lines.append(f"| {label} | {d:.1f} | {g:.1f} | {ratio} |")
    return lines
