"""Output caps: a ``max_tokens`` for requests that set none, so a runaway generation stops.

The cap comes from a rule (per task or model) or the config default; ``tokenomy optimize caps``
suggests per-task caps from the ledger (a high percentile of completion tokens times a margin).
A client's own ``max_tokens`` / ``max_completion_tokens`` always wins. Answers cut by the cap
(``finish_reason: length``) are counted per task in ``tokenomy_optimize_truncated_total``.
"""

from __future__ import annotations

from typing import Any

name = "output_cap"


def apply(body: dict[str, Any], cap: int) -> dict[str, Any] | None:
    """The body with ``max_tokens: cap`` when it has no output limit of its own, else ``None``."""
    if body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None:
        return None
    return {**body, "max_tokens": cap}


def truncated(body: dict[str, Any]) -> bool:
    """Whether an OpenAI-shaped answer (or chunk) stopped at the length limit."""
    choices = body.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") == "length" for c in choices
    )
