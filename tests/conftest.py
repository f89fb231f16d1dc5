"""Shared fixtures: fake upstreams (real HTTP servers on loopback) and a gateway in front of them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.fakes.anthropic_upstream import AnthropicFake, start_anthropic_fake
from tests.fakes.openai_upstream import OpenAIFake, start_openai_fake
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.postgres import pgvector06_server, pgvector_server, postgres_server  # noqa: F401
from tests.support.redis import redis_server  # noqa: F401

OPENAI_KEY = "sk-fake-openai"
ANTHROPIC_KEY = "sk-ant-fake"

# Every gateway a test starts keeps its files (ledger, spool) in a throwaway directory.
os.environ["TOKENOMY_HOME"] = tempfile.mkdtemp(prefix="tokenomy-test-home-")
# The embedded generator's variants and the verdict of their known-answer check are kept between
# runs (checking them costs tens of seconds once per machine).
os.environ.setdefault("TOKENOMY_MODELS_DIR", os.path.expanduser("~/.cache/tokenomy/models"))


@pytest.fixture(scope="session")
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    fake = await start_openai_fake(api_key=OPENAI_KEY, stream_interval=0.05)
    yield fake
    await fake.close()


@pytest.fixture(scope="session")
async def anthropic_fake() -> AsyncIterator[AnthropicFake]:
    fake = await start_anthropic_fake(api_key=ANTHROPIC_KEY, stream_interval=0.05)
    yield fake
    await fake.close()


def proxy_config(openai_url: str, anthropic_url: str, extra_server: str = "") -> str:
    """Models on the fakes: ``fast`` and ``embed`` (OpenAI), ``claude`` (Anthropic), ``tight`` (short timeout)."""
    return f"""
server: {{max_body_bytes: 1048576 {extra_server}}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini}}
  - name: embed
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}",
          model: text-embedding-3-small}}
  - name: claude
    deployments:
      - {{provider: anthropic, base_url: "{anthropic_url}", api_key: "${{T_ANT_KEY:-{ANTHROPIC_KEY}}}",
          model: claude-3-5-haiku-latest}}
  - name: tight
    deployments:
      - {{provider: openai, base_url: "{openai_url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini,
          timeout_s: 0.5}}
"""


@pytest.fixture(scope="session")
async def proxy(openai_fake: OpenAIFake, anthropic_fake: AnthropicFake) -> AsyncIterator[RunningGateway]:
    async with running_gateway(proxy_config(openai_fake.base_url, anthropic_fake.base_url)) as gw:
        yield gw


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("openai_fake", "anthropic_fake"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distilled intent student trained once per session on the 12-intent BANKING77 subset."""
    from click.testing import CliRunner

    from tokenomy.cli import main

    out = tmp_path_factory.mktemp("student") / "intents"
    data = Path(__file__).parent / "distill" / "data" / "banking77_train.jsonl"
    result = CliRunner().invoke(main, ["distill", "train", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def finetuned_student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tuned MiniLM student, int8 (two epochs on the 12-intent subset; needs the ``distill`` extra)."""
    pytest.importorskip("torch", reason="the distill extra (PyTorch) is not installed; see docs/architecture.md")
    from click.testing import CliRunner

    from tokenomy.cli import main

    out = tmp_path_factory.mktemp("student") / "finetuned"
    data = Path(__file__).parent / "distill" / "data" / "banking77_train.jsonl"
    args = [
        "distill",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--student",
        "minilm-finetuned",
        "--epochs",
        "2",
        "--int8",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out
