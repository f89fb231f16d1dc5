"""Shadow traffic: a sample of a task's requests sent again, in the background, to a candidate model.

```yaml
shadow:
  - {task: summarize, model: gpt-4o, candidate: small, sample: 0.05, max_usd_per_day: 2}
```

``model`` is the model name the client asked for (a router's name works too). The evaluation
package runs it (``tokenomy.evaluate.shadow``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field, model_validator

from tokenomy.config.base import _Frozen


class ShadowRule(_Frozen):
    """Copy ``sample`` of ``task``'s requests for ``model`` to ``candidate``, up to ``max_usd_per_day``."""

    task: str = Field(min_length=1)
    model: str = Field(min_length=1, description="the model name clients ask for")
    candidate: str = Field(min_length=1, description="the model the copies go to")
    sample: float = Field(gt=0.0, le=1.0, description="share of matching requests copied")
    max_usd_per_day: float = Field(gt=0.0, description="shadow spend per UTC day after which copying stops")

    @model_validator(mode="after")
    def _differs(self) -> ShadowRule:
        if self.model == self.candidate:
            raise ValueError(f"shadow rule for task {self.task!r}: candidate is the model itself")
        return self


def check_shadow(rules: Iterable[ShadowRule], names: Iterable[str]) -> None:
    """Every model a rule names exists; a (task, model) pair has one rule."""
    known = set(names)
    seen: set[tuple[str, str]] = set()
    for i, rule in enumerate(rules):
        for field in ("model", "candidate"):
            name = getattr(rule, field)
            if name not in known:
                raise ValueError(f"shadow[{i}].{field}: unknown model {name!r}; known: {', '.join(sorted(known))}")
        if (rule.task, rule.model) in seen:
            raise ValueError(f"shadow[{i}]: a second rule for task {rule.task!r} and model {rule.model!r}")
        seen.add((rule.task, rule.model))
