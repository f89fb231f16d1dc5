"""Fallback plans: the ordered models a request may be served by, and the context-window fallback."""

from __future__ import annotations

from typing import Any

from tokenomy.config.models import Deployment, LogicalModel
from tokenomy.tokens.count import Encode, TokenCounter, count_prompt


def fallback_chain(model: LogicalModel, by_name: dict[str, LogicalModel]) -> tuple[LogicalModel, ...]:
    """``model`` then its fallbacks, depth first (a fallback's own fallbacks follow it), each model once."""
    chain: list[LogicalModel] = []

    def visit(current: LogicalModel) -> None:
        if any(seen is current for seen in chain):
            return
        chain.append(current)
        for name in current.fallbacks:
            visit(by_name[name])

    visit(model)
    return tuple(chain)


def context_window_target(
    model: LogicalModel, prompt_tokens: int, by_name: dict[str, LogicalModel]
) -> LogicalModel | None:
    """The model a prompt of ``prompt_tokens`` must go to instead of ``model`` (``None``: it fits)."""
    target: LogicalModel | None = None
    current = model
    seen = {id(model)}
    while (window := current.context_window_fallback) is not None and prompt_tokens > window.max_prompt_tokens:
        nxt = by_name[window.model]
        if id(nxt) in seen:
            break
        seen.add(id(nxt))
        target = current = nxt
    return target


class PromptTokens:
    """Counts prompt tokens with the served model's tokenizer (offline; tiktoken or the GGUF vocabulary)."""

    def __init__(self, gguf_path: str | None = None, counter: TokenCounter | None = None) -> None:
        self._counter = counter or TokenCounter()
        self._gguf = gguf_path
        self._encoders: dict[tuple[str, str], Encode] = {}

    def count(self, endpoint: str, body: dict[str, Any], deployment: Deployment) -> int:
        """The prompt tokens of ``body`` for ``deployment``'s model."""
        key = (deployment.model, deployment.provider)
        encode = self._encoders.get(key)
        if encode is None:
            encode, _source = self._counter.counter_for(deployment.model, deployment.provider, self._gguf)
            self._encoders[key] = encode
        return count_prompt(encode, endpoint, body)


def requested_max_tokens(body: dict[str, Any]) -> int:
    """The completion tokens the request may use at most, as far as it says (0 when it does not)."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            n = body.get("n")
            return value * (n if isinstance(n, int) and n > 0 else 1)
    return 0
