"""The policy file and the per-task choice it drives.

A policy file is JSON or YAML with the shape of :class:`tokenomy.config.policy.PolicySet`::

    version: 1
    default: {min_quality: 0.7, candidates: [{model: fast, quality: 0.75, cost_per_1k_requests: 0.2}]}
    tasks:
      summarize:
        min_quality: 0.8
        candidates:
          - {model: fast, quality: 0.82, input_per_mtok: 0.15, output_per_mtok: 0.6}
          - {model: smart, quality: 0.93, input_per_mtok: 2.5, output_per_mtok: 10}

A policy that no candidate can satisfy is refused when the file is loaded (at start-up), naming the
task and its threshold. At request time, a task with no policy uses ``default``; with no default
the request fails with 400 ``unknown_task``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tokenomy.config.policy import Candidate, PolicySet, TaskPolicy
from tokenomy.errors import GatewayError, invalid_request


class PolicyFileError(ValueError):
    """A policy file that cannot be read or does not follow the format."""


def load_policy_file(path: str | Path) -> PolicySet:
    """Read and validate a policy file (``.json``, else YAML, which also reads JSON)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"policy file {str(file)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        data: Any = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyFileError(f"policy file {str(file)!r} is not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyFileError(f"policy file {str(file)!r} must hold a mapping with 'tasks' and/or 'default'")
    try:
        return PolicySet.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(f"policy file {str(file)!r} is invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class PolicyChoice:
    """The policy used (``task``: the task name, or ``default``), the chosen candidate and the baseline."""

    task: str
    chosen: Candidate
    baseline: Candidate


class PolicyRouter:
    """Choose per task; each task's choice is computed once (policies are fixed at start-up)."""

    def __init__(self, name: str, policies: PolicySet) -> None:
        self.name = name
        self._choices: dict[str, PolicyChoice] = {
            task: _choice(task, policy) for task, policy in policies.tasks.items()
        }
        self._default = _choice("default", policies.default) if policies.default is not None else None

    def choose(self, task: str) -> PolicyChoice:
        """The choice for ``task``: its own policy, else the default; 400 naming the task otherwise."""
        found = self._choices.get(task) or self._default
        if found is None:
            raise _unknown_task(self.name, task, sorted(self._choices))
        return found


def _choice(task: str, policy: TaskPolicy) -> PolicyChoice:
    chosen = policy.choose()
    if chosen is None:  # PolicySet.check refuses these at load time
        raise ValueError(f"no candidate of task {task!r} meets min_quality {policy.min_quality}")
    return PolicyChoice(task, chosen, policy.most_expensive())


def _unknown_task(router: str, task: str, known: list[str]) -> GatewayError:
    return invalid_request(
        f"The router {router!r} has no policy for task {task!r} and no default policy. "
        f"Known tasks: {', '.join(known) or 'none'} (set header x-tokenomy-task or metadata.task).",
        param="metadata.task",
        code="unknown_task",
    )
