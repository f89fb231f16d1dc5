"""Every configuration example in the docs loads as written (``tokenomy config check`` would pass it).

A YAML block whose top-level keys are configuration sections is meant to load. One with a
``models:`` list must load exactly as written; a fragment without one (showing a single section)
is loaded beside the stub models below, which stand for "your models". The policy-file example
of docs/routing.md is written to ``policies.yaml`` first, since other examples name that file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tokenomy.config import ConfigError, parse_config
from tokenomy.config.models import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SECTIONS = set(GatewayConfig.model_fields)
STUB_MODELS = """
models:
  - name: small
    aliases: [cheap]
    deployments: [{provider: local, model: smollm2-135m-instruct}]
  - name: large
    aliases: [judge]
    deployments: [{provider: local, model: smollm2-135m-instruct}]
"""
_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)


def yaml_blocks() -> list[tuple[str, int, str, object]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            out.append((doc.name, line, match.group(1), yaml.safe_load(match.group(1))))
    return out


BLOCKS = yaml_blocks()
CONFIGS = [
    (f"{name}:{line}", text, data)
    for name, line, text, data in BLOCKS
    if isinstance(data, dict) and set(data) <= SECTIONS
]


def test_the_docs_have_config_examples() -> None:
    assert len(CONFIGS) >= 8
    assert any("configuration.md" in where and "models" in data for where, _t, data in CONFIGS)  # type: ignore[operator]


@pytest.mark.parametrize(("where", "text", "data"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_doc_config_loads(
    where: str, text: str, data: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = next(t for name, _l, t, d in BLOCKS if name == "routing.md" and isinstance(d, dict) and "tasks" in d)
    (tmp_path / "policies.yaml").write_text(policy)
    monkeypatch.chdir(tmp_path)
    source = text if "models" in data else text + STUB_MODELS
    try:
        parse_config(source, where)
    except ConfigError as exc:
        pytest.fail(f"the example at {where} does not load:\n{exc}")
