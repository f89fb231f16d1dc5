"""``config check`` reports every problem in one pass, cross-references included, each at its line."""

from __future__ import annotations

import pytest

from tokenomy.config import ConfigError, parse_config

BROKEN = """\
server:
  prot: 8080
budgets:
  rules:
    - {scope: task, name: "*", usd_per_day: 1, action: soft, downgrade_to: nowhere}
routers:
  - {name: auto, kind: policy, policies_file: /nonexistent/policies.yaml}
models:
  - name: a
    fallbacks: [missing]
    deployments:
      - {provider: openai, base_url: "http://one.example/v1", model: m, name: same}
  - name: a
    deployments:
      - {provider: openai, base_url: "http://two.example/v1", model: m, name: same}
"""


def test_every_problem_at_once_each_at_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BROKEN, "gw.yaml")
    found = [(i.line, i.path) for i in info.value.issues]
    assert found == [
        (2, "server.prot"),
        (5, "budgets.rules[0].downgrade_to"),
        (7, "routers[0].policies_file"),
        (10, "models[0].fallbacks[0]"),
        (13, "models[1].name"),
        (15, "models[1].deployments[0].name"),
    ], str(info.value)
    messages = "\n".join(str(i) for i in info.value.issues)
    assert "unknown key; did you mean 'port'?" in messages
    assert "'nowhere' is not a model" in messages
    assert "cannot be read" in messages
    assert "falls back to 'missing', which is not a model" in messages
    assert "model name 'a' is declared twice" in messages
    assert "deployment name 'same' is already used" in messages


def test_same_upstream_model_on_two_hosts_gets_distinct_default_names() -> None:
    config = parse_config("""
models:
  - name: a
    deployments:
      - {provider: openai, base_url: "http://one.example/v1", model: gpt-4o-mini}
      - {provider: openai, base_url: "http://two.example:8000/v1", model: gpt-4o-mini}
  - name: b
    deployments:
      - {provider: openai, base_url: "http://one.example/v1", model: gpt-4o-mini}
      - {provider: openai, base_url: "http://one.example/v1", model: gpt-4o}
""")
    labels = [d.label for m in config.models for d in m.deployments]
    assert labels == [
        "openai/gpt-4o-mini@one.example",
        "openai/gpt-4o-mini@two.example:8000",
        "openai/gpt-4o-mini@one.example",  # the same upstream under another model keeps its name
        "openai/gpt-4o",
    ]


def test_same_model_same_host_different_keys_get_distinct_default_names() -> None:
    config = parse_config("""
models:
  - name: a
    deployments:
      - {provider: openai, base_url: "http://one.example/v1", model: m, api_key: "${K1}"}
      - {provider: openai, base_url: "http://one.example/v1", model: m, api_key: "${K2}"}
  - name: b
    deployments:
      - {provider: openai, base_url: "http://one.example/v2", model: m, api_key: "${K1}"}
""")
    labels = [d.label for m in config.models for d in m.deployments]
    assert labels == ["openai/m@one.example/a#1", "openai/m@one.example/a#2", "openai/m@one.example/b"]


def test_explicit_names_that_clash_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"models\[0\].deployments\[1\].name: deployment name 'x'"):
        parse_config("""
models:
  - name: a
    deployments:
      - {name: x, provider: openai, base_url: "http://one.example/v1", model: m, api_key: "${K1}"}
      - {name: x, provider: openai, base_url: "http://one.example/v1", model: m, api_key: "${K2}"}
""")
