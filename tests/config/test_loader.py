"""Configuration loading: the README example, the embedded default, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenomy.cli import main
from tokenomy.config import ConfigError, load_config, parse_config

README_EXAMPLE = """
models:
  - name: gpt-4o-mini              # the name clients ask for
    deployments:
      - provider: openai           # openai | anthropic | local
        base_url: https://api.openai.com/v1
        api_key: ${OPENAI_API_KEY}
        model: gpt-4o-mini         # the upstream's model id
  - name: claude-haiku
    deployments:
      - provider: anthropic
        base_url: https://api.anthropic.com
        api_key: ${ANTHROPIC_API_KEY}
        model: claude-3-5-haiku-latest
"""


def test_readme_example_loads_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live")
    config = parse_config(README_EXAMPLE)
    assert config.model_names() == ["gpt-4o-mini", "claude-haiku"]
    dep = config.models[0].deployments[0]
    assert dep.api_key is not None and dep.api_key.env == "OPENAI_API_KEY"
    assert dep.api_key.resolve() == "sk-live"
    with pytest.raises(Exception, match="frozen"):
        dep.model = "other"  # type: ignore[misc]


def test_embedded_default_is_local_only() -> None:
    config = load_config(None)
    kinds = {d.provider for m in config.models for d in m.deployments}
    assert kinds == {"local"}
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= set(config.model_names())


def test_env_default_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    text = README_EXAMPLE.replace("${OPENAI_API_KEY}", "${NOT_SET_ANYWHERE:-sk-fallback}")
    assert parse_config(text).models[0].deployments[0].api_key.resolve() == "sk-fallback"  # type: ignore[union-attr]


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    return [str(i) for i in info.value.issues]


def test_every_error_is_reported_with_path_line_and_hint() -> None:
    text = """models:
  - name: x
    deployments:
      - provider: opena
        base_ur: http://x
        api_key: sk-123
        model: m
"""
    issues = _issues(text)
    assert len(issues) == 3
    joined = "\n".join(issues)
    assert "line 4: models[0].deployments[0].provider: unknown provider 'opena'" in joined
    assert "did you mean 'openai'?" in joined
    assert "line 5: models[0].deployments[0].base_ur: unknown key; did you mean 'base_url'?" in joined
    assert "line 6: models[0].deployments[0].api_key: secrets are only accepted as environment references" in joined


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("models: []", "models"),
        ("server: {port: 99999}\nmodels: [{name: a, deployments: [{provider: local, model: m}]}]", "server.port"),
        ("models: [{name: a, deployments: [{provider: openai, model: m}]}]", "needs a base_url"),
        ("models: [{name: a, deployments: [{provider: local, model: m, base_url: 'http://x'}]}]", "takes no base_url"),
        (
            "models: [{name: a, deployments: [{provider: local, model: m}]}, {name: a, deployments: "
            "[{provider: local, model: m}]}]",
            "declared twice",
        ),
        ("models: [{name: a, deployments: [{provider: openai, model: m, base_url: 'ftp://x'}]}]", "http://"),
        ("- just a list", "must be a mapping"),
        ("models: [unclosed", "not valid YAML"),
        ("modles: []", "did you mean 'models'?"),
    ],
)
def test_bad_configs(text: str, needle: str) -> None:
    assert any(needle in issue for issue in _issues(text)), _issues(text)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_cli_config_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    good = tmp_path / "good.yaml"
    good.write_text(README_EXAMPLE)
    result = CliRunner().invoke(main, ["config", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "OK (2 models, 2 deployments)" in result.output
    assert "refers to ${ANTHROPIC_API_KEY}, which is not set" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: a, deployments: [{provider: nope, model: m}]}]")
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "unknown provider 'nope'" in result.output


def test_cli_version() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0 and result.output.startswith("tokenomy ")
