"""Checks across the configuration (names and the references between them), all problems at once.

Each check returns every problem it finds with the path of the offending value, so that
``config check`` reports them in one pass, each at its own line. The problems travel inside
one :class:`ReferenceErrors` (a ``ValueError``, as pydantic validators expect); the loader
unpacks it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenomy.config.policy import AnyRouter, check_routers

if TYPE_CHECKING:
    from tokenomy.config.budgets import BudgetsConfig
    from tokenomy.config.models import AuthConfig, Deployment, LogicalModel

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


class ReferenceErrors(ValueError):
    """Several problems, each with its own path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(message for _loc, message in problems))


def raise_if(problems: list[Problem]) -> None:
    """Raise :class:`ReferenceErrors` when there is any problem."""
    if problems:
        raise ReferenceErrors(problems)


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def model_names(models: Sequence[LogicalModel]) -> list[Problem]:
    """Model names and aliases are unique."""
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, model in enumerate(models):
        for where, name in [(("models", i, "name"), model.name)] + [
            (("models", i, "aliases", j), alias) for j, alias in enumerate(model.aliases)
        ]:
            if name in seen:
                problems.append((where, f"model name {name!r} is declared twice"))
            seen.add(name)
    return problems


def fallbacks(models: Sequence[LogicalModel]) -> list[Problem]:
    """Fallback targets exist, are not the model itself, and form no cycle."""
    by_name = {name: model for model in models for name in (model.name, *model.aliases)}
    problems: list[Problem] = []
    for i, model in enumerate(models):
        targets: list[tuple[Loc, str]] = [(("models", i, "fallbacks", j), t) for j, t in enumerate(model.fallbacks)]
        if model.context_window_fallback is not None:
            targets.append((("models", i, "context_window_fallback", "model"), model.context_window_fallback.model))
        for where, target in targets:
            if target not in by_name:
                hint = _hint(target, list(by_name))
                problems.append((where, f"model {model.name!r} falls back to {target!r}, which is not a model{hint}"))
            elif by_name[target] is model:
                problems.append((where, f"model {model.name!r} falls back to itself"))
    if problems:
        return problems  # a cycle search needs every name to resolve
    for i, model in enumerate(models):
        cycle = _cycle(model, by_name, (model.name,))
        if cycle is not None:
            problems.append((("models", i, "fallbacks"), f"fallbacks form a cycle: {' -> '.join(cycle)}"))
            break
    return problems


def _cycle(model: LogicalModel, by_name: dict[str, LogicalModel], path: tuple[str, ...]) -> tuple[str, ...] | None:
    for target in model.fallbacks:
        nxt = by_name[target]
        if nxt.name in path:
            return (*path, nxt.name)
        found = _cycle(nxt, by_name, (*path, nxt.name))
        if found is not None:
            return found
    return None


def _identity(dep: Deployment) -> tuple[str, str, str | None, str | None]:
    """What makes two deployments the same upstream: provider, model, URL and key."""
    return (dep.provider, dep.model, dep.base_url, dep.api_key.env if dep.api_key is not None else None)


def default_host_label(dep: Deployment) -> str:
    """``provider/model@host``: the default name when ``provider/model`` alone is ambiguous."""
    host = urlsplit(dep.base_url).netloc if dep.base_url else "local"
    return f"{dep.provider}/{dep.model}@{host}"


def deployment_names(models: Sequence[LogicalModel]) -> tuple[dict[Loc, str], list[Problem]]:
    """Unique deployment names: unnamed deployments that would share a name with another upstream
    get a longer one; two explicit names that clash are errors.

    An unnamed deployment is ``provider/model``; when another upstream has that name too, the host
    is added (``provider/model@host``), then the logical model (``provider/model@host/name``), then
    its position (``...#2``). The same upstream listed under two models may share a name (it is
    one upstream). Returns the new default names (by path of the deployment) and the problems.
    """
    deps = [
        (("models", i, "deployments", j), m.name, j, d)
        for i, m in enumerate(models)
        for j, d in enumerate(m.deployments)
    ]
    explicit: dict[str, tuple[str, str, str | None, str | None]] = {}
    problems: list[Problem] = []
    for loc, _model, _j, dep in deps:
        if dep.name is None:
            continue
        first = explicit.setdefault(dep.name, _identity(dep))
        if first != _identity(dep):
            problems.append(
                (
                    (*loc, "name"),
                    f"deployment name {dep.name!r} is already used by another deployment; give each a distinct name",
                )
            )
    unnamed = [(loc, model, j, dep) for loc, model, j, dep in deps if dep.name is None]
    owners: dict[str, set[tuple[str, str, str | None, str | None]]] = {n: {i} for n, i in explicit.items()}
    renamed: dict[Loc, str] = {}
    for level in range(_LEVELS):
        clash: dict[str, set[tuple[str, str, str | None, str | None]]] = {}
        for _loc, model, j, dep in unnamed:
            clash.setdefault(_default_name(level, dep, model, j), set()).add(_identity(dep))
        undecided = []
        for loc, model, j, dep in unnamed:
            name = _default_name(level, dep, model, j)
            taken = owners.get(name, set()) - {_identity(dep)}
            if (len(clash[name]) == 1 and not taken) or level == _LEVELS - 1:
                owners.setdefault(name, set()).add(_identity(dep))
                if level:
                    renamed[loc] = name
            else:
                undecided.append((loc, model, j, dep))
        unnamed = undecided
    return renamed, problems


_LEVELS = 4


def _default_name(level: int, dep: Deployment, model: str, position: int) -> str:
    """The default name of an unnamed deployment at each level of disambiguation."""
    if level == 0:
        return dep.label
    host = default_host_label(dep)
    return host if level == 1 else f"{host}/{model}" if level == 2 else f"{host}/{model}#{position + 1}"


def routers(items: Sequence[AnyRouter], known: Sequence[str]) -> list[Problem]:
    """Each router: a new name, known models, a policy file that loads and can be met."""
    problems: list[Problem] = []
    taken = set(known)
    for i, router in enumerate(items):
        if router.name in taken:
            problems.append((("routers", i, "name"), f"{router.name!r} is already a model or router name"))
            taken.add(router.name)
            continue
        taken.add(router.name)
        try:
            check_routers([router], known)
        except ValueError as exc:
            field = "policies_file" if getattr(router, "policies_file", None) else ""
            problems.append((("routers", i, field) if field else ("routers", i), str(exc)))
        except OSError as exc:
            problems.append((("routers", i, "policies_file"), f"cannot read the policy file: {exc}"))
    return problems


def downgrades(budgets: BudgetsConfig, auth: AuthConfig | None, known: Sequence[str]) -> list[Problem]:
    """A soft budget's ``downgrade_to`` names a model of this gateway."""
    targets: list[tuple[Loc, str | None]] = [
        (("budgets", "rules", i, "downgrade_to"), rule.downgrade_to) for i, rule in enumerate(budgets.rules)
    ]
    if auth is not None:
        targets += [
            (("auth", "keys", i, "budget", "downgrade_to"), key.budget.downgrade_to)
            for i, key in enumerate(auth.keys)
            if key.budget is not None
        ]
    return [
        (where, f"downgrade_to {target!r} is not a model of this gateway{_hint(target, known)}")
        for where, target in targets
        if target is not None and target not in known
    ]
