"""Router models: logical model names (``auto``...) that pick a real model per request.

Three kinds (docs/routing.md, "Policies, router models and cascades"):

- ``policy``: per-task candidates with measured quality and cost; the cheapest meeting the task's
  ``min_quality`` serves. Inline (``tasks``/``default``) or from a ``policies_file``.
- ``cascade``: models tried cheap to expensive; the first answer passing its step's checks is kept.
- ``learned``: a trained router file (``tokenomy.routing.learned``) predicts the cheapest good model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tokenomy.config.base import _Frozen


class Candidate(_Frozen):
    """One model a task may use: its measured quality (0-1) and its cost, per request or per token."""

    model: str = Field(min_length=1)
    quality: float = Field(ge=0.0, le=1.0, description="measured quality on the task, 0-1")
    cost_per_1k_requests: float | None = Field(default=None, ge=0, description="USD per 1000 requests")
    input_per_mtok: float | None = Field(default=None, ge=0, description="USD per million prompt tokens")
    output_per_mtok: float | None = Field(default=None, ge=0, description="USD per million completion tokens")

    @model_validator(mode="after")
    def _one_cost(self) -> Candidate:
        per_token = self.input_per_mtok is not None or self.output_per_mtok is not None
        if (self.cost_per_1k_requests is None) == (not per_token):
            raise ValueError(
                f"candidate {self.model!r}: give either cost_per_1k_requests or input_per_mtok/output_per_mtok"
            )
        return self

    def request_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one request of the given size (per-request costs ignore the size)."""
        if self.cost_per_1k_requests is not None:
            return self.cost_per_1k_requests / 1000.0
        return ((self.input_per_mtok or 0.0) * prompt_tokens + (self.output_per_mtok or 0.0) * completion_tokens) / 1e6


class TaskPolicy(_Frozen):
    """The bar a task must meet and the models that may meet it."""

    min_quality: float = Field(ge=0.0, le=1.0)
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    typical_prompt_tokens: int = Field(default=1000, gt=0, description="request size used to compare per-token costs")
    typical_completion_tokens: int = Field(default=250, ge=0)

    def cost(self, candidate: Candidate) -> float:
        """The candidate's cost for a typical request of this task."""
        return candidate.request_cost(self.typical_prompt_tokens, self.typical_completion_tokens)

    def choose(self) -> Candidate | None:
        """The cheapest candidate meeting ``min_quality`` (ties: the better one); ``None`` when none does."""
        able = [c for c in self.candidates if c.quality >= self.min_quality]
        return min(able, key=lambda c: (self.cost(c), -c.quality)) if able else None

    def most_expensive(self) -> Candidate:
        """The baseline: what serving every request of the task with its dearest candidate costs."""
        return max(self.candidates, key=self.cost)


class PolicySet(_Frozen):
    """Task policies plus the ``default`` for tasks not listed. This is also the policy file format."""

    version: Literal[1] = 1
    tasks: dict[str, TaskPolicy] = Field(default_factory=dict)
    default: TaskPolicy | None = None

    def check(self, where: str, models: Iterable[str]) -> None:
        """Every candidate is a known model and every policy can be met; ``ValueError`` otherwise."""
        known = set(models)
        named = [*self.tasks.items(), *([("default", self.default)] if self.default is not None else [])]
        if not named:
            raise ValueError(f"{where}: no task policies and no default")
        for task, policy in named:
            for cand in policy.candidates:
                if cand.model not in known:
                    raise ValueError(
                        f"{where}: task {task!r} names unknown model {cand.model!r}; known: {', '.join(sorted(known))}"
                    )
            if policy.choose() is None:
                best = max(c.quality for c in policy.candidates)
                raise ValueError(
                    f"{where}: no candidate of task {task!r} meets min_quality {policy.min_quality} "
                    f"(best quality is {best})"
                )


class PolicyRouterConfig(_Frozen):
    """``kind: policy``: inline ``tasks``/``default``, or ``policies_file`` (JSON or YAML, same shape)."""

    name: str = Field(min_length=1)
    kind: Literal["policy"]
    policies_file: str | None = Field(default=None, description="path of a policy file (docs/routing.md)")
    tasks: dict[str, TaskPolicy] = Field(default_factory=dict)
    default: TaskPolicy | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PolicyRouterConfig:
        inline = bool(self.tasks) or self.default is not None
        if inline == (self.policies_file is not None):
            raise ValueError(f"router {self.name!r}: give either policies_file or inline tasks/default")
        return self

    def inline(self) -> PolicySet:
        """The inline policies as a :class:`PolicySet`."""
        return PolicySet(tasks=self.tasks, default=self.default)


class LogprobCheck(_Frozen):
    """Mean token logprob of the answer at least ``min`` (skipped when the provider returns none)."""

    kind: Literal["logprob"]
    min: float = Field(le=0.0)


class JsonSchemaCheck(_Frozen):
    """The answer is JSON, valid against the request's ``response_format`` schema when it has one."""

    kind: Literal["json_schema"]


class RegexCheck(_Frozen):
    """The answer text matches ``pattern`` (``re.search``)."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1)

    @model_validator(mode="after")
    def _compiles(self) -> RegexCheck:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"regex check: invalid pattern {self.pattern!r}: {exc}") from None
        return self


class VerifierCheck(_Frozen):
    """A verifier ``model`` grades the answer 0-10; it passes at ``min_score`` or above."""

    kind: Literal["verifier"]
    model: str = Field(min_length=1)
    min_score: float = Field(ge=0.0, le=10.0)


class ConfidenceCheck(_Frozen):
    """A distilled student's confidence at least ``min`` and no abstention (no confidence: fails)."""

    kind: Literal["confidence"]
    min: float = Field(default=0.0, ge=0.0, le=1.0)


Check = Annotated[
    LogprobCheck | JsonSchemaCheck | RegexCheck | VerifierCheck | ConfidenceCheck, Field(discriminator="kind")
]


class CascadeStep(_Frozen):
    """One model of a cascade and the checks its answer must pass (all of them)."""

    model: str = Field(min_length=1)
    checks: tuple[Check, ...] = ()


class CascadeRouterConfig(_Frozen):
    """``kind: cascade``: steps from cheap to expensive; the last step's answer is kept if none passes."""

    name: str = Field(min_length=1)
    kind: Literal["cascade"]
    steps: tuple[CascadeStep, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _reachable(self) -> CascadeRouterConfig:
        for i, step in enumerate(self.steps[:-1]):
            if not step.checks:
                raise ValueError(
                    f"router {self.name!r}: step {i} ({step.model}) has no checks, so the steps after it never run"
                )
        return self


class LearnedRouterConfig(_Frozen):
    """``kind: learned``: a router file written by the router training command."""

    name: str = Field(min_length=1)
    kind: Literal["learned"]
    router_file: str = Field(min_length=1)
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="knob position, 0 cheapest to 1 most accurate; default: the file's"
    )
    candidates: tuple[str, ...] = Field(default=(), description="models it may pick; empty: all in the file")


RouterConfig = Annotated[PolicyRouterConfig | CascadeRouterConfig | LearnedRouterConfig, Field(discriminator="kind")]
AnyRouter = PolicyRouterConfig | CascadeRouterConfig | LearnedRouterConfig


def router_models(router: AnyRouter) -> list[str]:
    """The model names a router's config refers to (policy files are checked when loaded)."""
    if isinstance(router, PolicyRouterConfig):
        return [c.model for p in router.inline().tasks.values() for c in p.candidates] + (
            [c.model for c in router.default.candidates] if router.default is not None else []
        )
    if isinstance(router, CascadeRouterConfig):
        out = [s.model for s in router.steps]
        out += [c.model for s in router.steps for c in s.checks if isinstance(c, VerifierCheck)]
        return out
    return list(router.candidates)


def check_routers(routers: Iterable[AnyRouter], model_names: Iterable[str]) -> None:
    """Router names are unique and no model's; every model they name exists; policy files load and can be met."""
    known = list(model_names)
    taken = set(known)
    for router in routers:
        where = f"router {router.name!r}"
        if router.name in taken:
            raise ValueError(f"{where}: the name is already a model or router name")
        taken.add(router.name)
        if isinstance(router, PolicyRouterConfig):
            if router.policies_file is not None:
                from tokenomy.routing.policy import load_policy_file  # the file format lives with the router

                load_policy_file(router.policies_file).check(f"{where} ({router.policies_file})", known)
            else:
                router.inline().check(where, known)
            continue
        for model in router_models(router):
            if model not in known:
                raise ValueError(f"{where} names unknown model {model!r}; known: {', '.join(sorted(known))}")


def router_names(routers: Iterable[AnyRouter]) -> list[str]:
    """The router names clients may use as ``model`` (for ``/v1/models``)."""
    return [router.name for router in routers]
