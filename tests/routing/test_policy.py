"""Router config validation, the policy file format, and the policy stage's choice (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tokenomy.config import ConfigError, parse_config
from tokenomy.config.models import GatewayConfig
from tokenomy.config.policy import router_names
from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import CallContext, Completion, Endpoint, Response
from tokenomy.pipeline.policy import PolicyStage
from tokenomy.routing.policy import PolicyFileError, PolicyRouter, load_policy_file

MODELS = """
models:
  - name: cheap
    deployments: [{provider: openai, base_url: "http://c.invalid/v1", model: c,
                   pricing: {input_per_mtok: 0.1, output_per_mtok: 0.4}}]
  - name: mid
    deployments: [{provider: openai, base_url: "http://m.invalid/v1", model: m,
                   pricing: {input_per_mtok: 1.0, output_per_mtok: 4.0}}]
  - name: smart
    aliases: [big]
    deployments: [{provider: openai, base_url: "http://s.invalid/v1", model: s,
                   pricing: {input_per_mtok: 5.0, output_per_mtok: 20.0}}]
"""

POLICY = """
routers:
  - name: auto
    kind: policy
    default: {min_quality: 0.5, candidates: [{model: cheap, quality: 0.6, cost_per_1k_requests: 0.1},
                                              {model: smart, quality: 0.95, cost_per_1k_requests: 5}]}
    tasks:
      summarize:
        min_quality: 0.8
        candidates:
          - {model: cheap, quality: 0.7, input_per_mtok: 0.1, output_per_mtok: 0.4}
          - {model: mid, quality: 0.85, input_per_mtok: 1.0, output_per_mtok: 4.0}
          - {model: big, quality: 0.95, input_per_mtok: 5.0, output_per_mtok: 20.0}
"""


def cfg(routers: str = POLICY) -> GatewayConfig:
    return parse_config(MODELS + routers)


def test_policy_config_is_parsed_and_router_names_listed() -> None:
    config = cfg()
    assert router_names(config.routers) == ["auto"]


@pytest.mark.parametrize(
    ("routers", "message"),
    [
        (POLICY.replace("model: mid", "model: nope"), "unknown model 'nope'"),
        (POLICY.replace("min_quality: 0.8", "min_quality: 0.99"), "task 'summarize' meets min_quality 0.99"),
        (POLICY.replace("name: auto", "name: cheap"), "already a model or router name"),
        ("routers:\n  - {name: auto, kind: policy}\n", "either policies_file or inline"),
        ("routers:\n  - {name: auto, kind: magic}\n", "kind"),
        (
            "routers:\n  - {name: auto, kind: policy, default: {min_quality: 0.5, "
            "candidates: [{model: cheap, quality: 0.6}]}}\n",
            "give either cost_per_1k_requests",
        ),
    ],
)
def test_bad_router_configs_name_the_problem(routers: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg(routers)


def test_policy_choice_is_cheapest_meeting_the_bar() -> None:
    config = cfg()
    router = PolicyRouter("auto", config.routers[0].inline())  # type: ignore[union-attr]
    choice = router.choose("summarize")
    assert (choice.task, choice.chosen.model, choice.baseline.model) == ("summarize", "mid", "big")
    other = router.choose("translate")  # no policy: the default
    assert (other.task, other.chosen.model, other.baseline.model) == ("default", "cheap", "smart")


def test_unknown_task_without_default_is_a_400_naming_it() -> None:
    no_default = "\n".join(
        line for line in POLICY.splitlines() if "default:" not in line and "smart, quality" not in line
    )
    config = cfg(no_default + "\n")
    router = PolicyRouter("auto", config.routers[0].inline())  # type: ignore[union-attr]
    with pytest.raises(GatewayError) as info:
        router.choose("translate")
    assert info.value.status == 400 and "'translate'" in info.value.message and "summarize" in info.value.message


def _file_policy(min_quality: float) -> dict[str, Any]:
    return {
        "version": 1,
        "tasks": {
            "code": {
                "min_quality": min_quality,
                "candidates": [
                    {"model": "cheap", "quality": 0.5, "cost_per_1k_requests": 0.2},
                    {"model": "smart", "quality": 0.9, "cost_per_1k_requests": 9},
                ],
            }
        },
    }


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_policy_file_loads_in_json_and_yaml(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"policy{suffix}"
    path.write_text(json.dumps(_file_policy(0.4)))  # JSON is YAML too
    config = cfg(f"routers:\n  - {{name: auto, kind: policy, policies_file: '{path}'}}\n")
    assert load_policy_file(path).tasks["code"].choose().model == "cheap"  # type: ignore[union-attr]
    assert "auto" in PolicyStage(config).names


def test_bad_policy_files_fail_at_load(tmp_path: Path) -> None:
    unmet = tmp_path / "unmet.json"
    unmet.write_text(json.dumps(_file_policy(0.95)))
    with pytest.raises(ConfigError, match=r"task 'code' meets min_quality 0\.95"):
        cfg(f"routers:\n  - {{name: auto, kind: policy, policies_file: '{unmet}'}}\n")
    with pytest.raises(PolicyFileError, match="cannot be read"):
        load_policy_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PolicyFileError, match="not valid JSON"):
        load_policy_file(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("tasks: {code: {min_quality: 2, candidates: []}}\n")
    with pytest.raises(PolicyFileError, match="is invalid"):
        load_policy_file(wrong)


class Recorder:
    """The rest of the chain: records the model each call asked for."""

    def __init__(self) -> None:
        self.models: list[str] = []

    async def __call__(self, ctx: CallContext) -> Response:
        self.models.append(ctx.model)
        ctx.route = "primary"
        return Completion({"choices": [{"message": {"content": "hi"}}]})


def ctx_for(model: str, task: str = "untagged") -> CallContext:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return CallContext(request_id="r1", endpoint=Endpoint.CHAT, body=body, model=model, task=task)


async def test_stage_routes_router_names_and_passes_others_through() -> None:
    config = cfg()
    stage, rest = PolicyStage(config), Recorder()
    ctx = ctx_for("auto", task="summarize")
    await stage(ctx, rest)
    assert rest.models == ["mid"]
    assert ctx.model == "auto"  # the ledger's requested model stays the router
    assert ctx.route == "policy:summarize->mid/primary"
    assert ctx.baseline_deployment == config.models[2].deployments[0]
    plain = ctx_for("cheap")
    await stage(plain, rest)
    assert rest.models[-1] == "cheap" and plain.route == "primary" and plain.baseline_deployment is None


class FakeLearned:
    """Stands in for a trained router file: picks ``cheap`` for short prompts, else ``smart``."""

    models = ["cheap", "smart"]

    def embedding_texts(self, text: str) -> list[str]:
        return [text]  # no known preamble: the whole prompt, as the semantic cache embeds it

    def choose(self, embedding: Any, text: str, candidates: Any = None, threshold: float | None = None) -> Any:
        from tokenomy.routing.learned.router import RouterChoice

        pick = "cheap" if len(text) < 10 else "smart"
        return RouterChoice(pick, {"cheap": 0.5, "smart": 0.9}, f"{pick} for {len(text)} chars")


async def test_learned_router_embeds_off_loop_and_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    import tokenomy.routing.learned.artifact as artifact

    monkeypatch.setattr(artifact, "load_router", lambda path: FakeLearned())
    config = cfg("routers:\n  - {name: learn, kind: learned, router_file: r.npz}\n")
    stage, rest = PolicyStage(config), Recorder()
    from tokenomy.providers.local.shared_embed import SharedEmbedder

    shared = SharedEmbedder(lambda texts: np.zeros((len(texts), 4), dtype=np.float32))
    stage._learned["learn"]._embed = shared.aembed
    ctx = ctx_for("learn")
    await stage(ctx, rest)
    assert rest.models == ["cheap"] and ctx.route == "learned:learn->cheap/primary"
    await shared.aembed(["hello"])  # the same prompt again (as the semantic cache would ask): not recomputed
    assert shared.computed == 1
    assert ctx.baseline_deployment == config.models[2].deployments[0] and "5 chars" in ctx.decisions["learned_router"]
    monkeypatch.setattr(artifact, "load_router", lambda path: type("R", (), {"models": ["cheap", "ghost"]})())
    with pytest.raises(ValueError, match="ghost"):
        PolicyStage(config)
