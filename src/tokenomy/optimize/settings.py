"""The settings one request runs with: config defaults, then the first matching rule, then headers.

Headers: ``x-tokenomy-optimize: off`` sends the request exactly as it came (``lossless`` keeps
only the lossless transforms and prompt caching); ``x-tokenomy-compress: 0.25`` keeps about a
quarter of the compressible text (``1`` or ``off``: no compression). A header value that makes no
sense is a 400 naming the header, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from tokenomy.config.optimize import MAX_COMPRESS_RATIO, CompressMethod, OptimizeConfig, OptimizeRule
from tokenomy.errors import invalid_request

OPTIMIZE_HEADER = "x-tokenomy-optimize"
COMPRESS_HEADER = "x-tokenomy-compress"
WARNING_HEADER = "x-tokenomy-optimize-warning"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the stage needs to know for one request."""

    enabled: bool
    lossless: bool
    prompt_cache: str
    history_budget_tokens: int | None
    history_keep_last: int
    history_summary_model: str | None
    few_shot_k: int | None
    compress_ratio: float | None
    compress_method: CompressMethod
    compress_min_tokens: int
    max_tokens: int | None


def base_settings(config: OptimizeConfig, rule: OptimizeRule | None) -> Settings:
    """Config defaults overridden by the rule (the same for every request the rule matches)."""

    def pick(name: str) -> object:
        value = getattr(rule, name) if rule is not None else None
        return getattr(config, name) if value is None else value

    settings = Settings(
        enabled=config.enabled if rule is None or rule.enabled is None else rule.enabled,
        lossless=bool(pick("lossless")),
        prompt_cache=str(pick("prompt_cache")),
        history_budget_tokens=cast("int | None", pick("history_budget_tokens")),
        history_keep_last=cast(int, pick("history_keep_last")),
        history_summary_model=cast("str | None", pick("history_summary_model")),
        few_shot_k=cast("int | None", pick("few_shot_k")),
        compress_ratio=cast("float | None", pick("compress_ratio")),
        compress_method=cast(CompressMethod, pick("compress_method")),
        compress_min_tokens=cast(int, pick("compress_min_tokens")),
        max_tokens=cast("int | None", pick("max_tokens")),
    )
    return settings


def resolve(
    config: OptimizeConfig, rule: OptimizeRule | None, headers: dict[str, str], base: Settings | None = None
) -> Settings:
    """Merge config, rule and headers (raises a 400 for a bad header value); ``base``: what
    :func:`base_settings` gave for this config and rule, when the caller keeps it."""
    settings = base if base is not None else base_settings(config, rule)
    mode = headers.get(OPTIMIZE_HEADER)
    if mode is not None:
        mode = mode.strip().lower()
        if mode == "off":
            return _replace(settings, enabled=False)
        if mode == "lossless":
            settings = _replace(
                settings, history_budget_tokens=None, few_shot_k=None, compress_ratio=None, max_tokens=None
            )
        elif mode != "on":
            raise invalid_request(
                f"Header {OPTIMIZE_HEADER} must be 'on', 'off' or 'lossless' (got {mode[:40]!r}).",
                param=OPTIMIZE_HEADER,
            )
    keep = headers.get(COMPRESS_HEADER)
    if keep is not None:
        settings = _replace(settings, compress_ratio=_ratio(keep))
    return settings


def _ratio(value: str) -> float | None:
    """``x-tokenomy-compress`` (the share of text to keep) as a compression ratio."""
    text = value.strip().lower()
    if text in ("off", "1", "1.0"):
        return None
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    low = 1 / MAX_COMPRESS_RATIO
    if not low <= share < 1:
        raise invalid_request(
            f"Header {COMPRESS_HEADER} is the share of compressible text to keep: a number from {low:g} "
            f"to 1, e.g. 0.25 keeps about a quarter (got {value[:40]!r}).",
            param=COMPRESS_HEADER,
        )
    return 1 / share


def _replace(settings: Settings, **changes: object) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)  # type: ignore[arg-type]
