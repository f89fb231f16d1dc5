"""Configuration of the optimize stage: which transforms run, with what budgets, per task and model.

Only lossless transforms and provider prompt caching (which changes nothing the model reads) are on
by default; every transform that changes what the model reads is opt-in, by a rule or a header.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tokenomy.config.base import _Frozen

MAX_COMPRESS_RATIO = 50.0
"""Beyond this a compressed context keeps almost nothing (a ratio of 50 keeps 2%)."""

PromptCacheMode = Literal["auto", "always", "off"]
CompressMethod = Literal["condensed", "extractive"]


class OptimizeSettings(_Frozen):
    """The settings a rule can override (``None``: inherit the config default)."""

    enabled: bool | None = Field(default=None, description="false: send these requests exactly as they came")
    lossless: bool | None = Field(
        default=None, description="JSON minification, repeated system messages, whitespace outside code"
    )
    prompt_cache: PromptCacheMode | None = Field(
        default=None,
        description="Anthropic cache_control breakpoints: auto = once a prefix repeats, always, or off",
    )
    history_budget_tokens: int | None = Field(
        default=None, gt=0, description="trim the middle of long conversations to this many prompt tokens"
    )
    history_keep_last: int | None = Field(default=None, ge=1, description="most recent messages always kept")
    history_summary_model: str | None = Field(
        default=None, description="a model of this gateway that summarizes the dropped turns"
    )
    few_shot_k: int | None = Field(
        default=None, ge=1, description="keep the k demonstrations most similar to the current input"
    )
    compress_ratio: float | None = Field(
        default=None, gt=1, le=MAX_COMPRESS_RATIO, description="long contexts shrink about this many times"
    )
    compress_method: CompressMethod | None = None
    compress_min_tokens: int | None = Field(
        default=None, ge=0, description="contexts shorter than this are never compressed"
    )
    max_tokens: int | None = Field(default=None, gt=0, description="output cap applied when the client sets none")


class OptimizeRule(OptimizeSettings):
    """Overrides for requests of one model and/or task (the first matching rule applies)."""

    model: str | None = None
    task: str | None = None

    @model_validator(mode="after")
    def _selects(self) -> OptimizeRule:
        if self.model is None and self.task is None:
            raise ValueError("an optimize rule needs a model, a task or both")
        return self


class OptimizeConfig(_Frozen):
    """The optimize stage (between the cache and routing)."""

    enabled: bool = True
    lossless: bool = True
    prompt_cache: PromptCacheMode = "auto"
    prompt_cache_min_tokens: int = Field(
        default=1024, ge=1, description="shortest prefix worth a breakpoint (Anthropic's minimum for most models)"
    )
    history_budget_tokens: int | None = Field(default=None, gt=0)
    history_keep_last: int = Field(default=6, ge=1)
    history_summary_model: str | None = None
    few_shot_k: int | None = Field(default=None, ge=1)
    compress_ratio: float | None = Field(default=None, gt=1, le=MAX_COMPRESS_RATIO)
    compress_method: CompressMethod = "condensed"
    compress_min_tokens: int = Field(default=1000, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    rules: tuple[OptimizeRule, ...] = ()

    def check_models(self, names: list[str]) -> None:
        """Raise ``ValueError`` when a summary model is not a model of this gateway."""
        wanted = [("optimize.history_summary_model", self.history_summary_model)]
        wanted += [
            (f"optimize.rules[{i}].history_summary_model", r.history_summary_model) for i, r in enumerate(self.rules)
        ]
        for where, name in wanted:
            if name is not None and name not in names:
                raise ValueError(f"{where}: unknown model {name!r} (known: {', '.join(names)})")

    def rule_for(self, model: str, task: str) -> OptimizeRule | None:
        """The first rule matching the model and task."""
        for rule in self.rules:
            if (rule.model is None or rule.model == model) and (rule.task is None or rule.task == task):
                return rule
        return None
