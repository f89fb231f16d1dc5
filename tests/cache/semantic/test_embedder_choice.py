"""The semantic tier's query embedder: int8 where the CPU has VNNI and no learned router shares it."""

from __future__ import annotations

import logging
from pathlib import Path

import openai
import pytest
import yaml
from tests.budgets.helpers import gateway_config
from tests.fakes.openai_upstream import start_openai_fake
from tests.support.gateway import running_gateway

from tokenomy.cache.semantic.embedder_choice import embedder_arithmetic
from tokenomy.keys.record import hash_key
from tokenomy.providers.local.shared_embed import shared_embedder

KEY = "sk-embedder-choice"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n")
    return path


def test_auto_is_int8_only_with_vnni_and_no_learned_router(tmp_path: Path) -> None:
    vnni, avx2 = cpuinfo(tmp_path / "a", "fpu avx2 avx512f avx512_vnni"), cpuinfo(tmp_path / "b", "fpu avx2 fma")
    assert embedder_arithmetic("auto", False, vnni) == "int8"
    assert embedder_arithmetic("auto", True, vnni) == "float32"  # the learned router's vectors are float32
    assert embedder_arithmetic("auto", False, avx2) == "float32"
    assert embedder_arithmetic("auto", False, cpuinfo(tmp_path / "c", "fp asimd asimddp")) == "float32"  # not x86
    assert embedder_arithmetic("auto", False, tmp_path / "missing") == "float32"
    assert embedder_arithmetic("int8", True, avx2) == "int8"  # a setting is obeyed
    assert embedder_arithmetic("float32", False, vnni) == "float32"


@pytest.fixture(autouse=True)
def _make_dirs(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()


@pytest.mark.parametrize(("arithmetic", "spinning"), [("int8", "in-run"), ("float32", "never")])
async def test_the_gateway_looks_up_with_the_embedder_it_chose(
    tmp_path: Path, arithmetic: str, spinning: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A repeated question written differently hits through the embedder of the configured arithmetic,
    whose threads, and the cross-encoder's, wait as ``server.onnx_spinning`` says; the gateway says at
    start which arithmetic it is."""
    fake = await start_openai_fake()
    keys = [{"name": "app", "sha256": hash_key(KEY), "tenant": "acme"}]
    config = yaml.safe_load(gateway_config(fake.base_url, tmp_path, keys=keys))
    config.setdefault("server", {})["onnx_spinning"] = spinning
    config["cache"] = {
        "exact": {"path": str(tmp_path / "cache.db")},
        "semantic": {"enabled": True, "index_path": str(tmp_path / "s.usearch"), "embedder_arithmetic": arithmetic},
    }
    try:
        with caplog.at_level(logging.INFO, logger="tokenomy.gateway"):
            async with running_gateway(yaml.safe_dump(config)) as gw:
                embedder = shared_embedder(arithmetic, spinning)  # type: ignore[arg-type]
                semantic = gw.app.gateway.semantic
                assert semantic._embed == embedder.aembed
                assert semantic.check._encoder.spinning == spinning
                async with openai.AsyncOpenAI(base_url=gw.v1, api_key=KEY, max_retries=0) as client:
                    first = await client.chat.completions.create(
                        model="fast", temperature=0,
                        messages=[{"role": "user", "content": "What is the capital city of Canada?"}],
                    )  # fmt: skip
                    before = embedder.computed
                    again = await client.chat.completions.with_raw_response.create(
                        model="fast", temperature=0,
                        messages=[{"role": "user", "content": "what is the capital city of canada"}],
                    )  # fmt: skip
        assert embedder.computed > before  # the second question was embedded by this embedder
        assert again.headers["x-tokenomy-cache"] == "hit-semantic"
        assert again.parse().choices[0].message.content == first.choices[0].message.content
        assert f"the query embedder computes in {arithmetic}" in caplog.text
    finally:
        await fake.close()


def test_unknown_values_are_refused_with_their_line() -> None:
    """A misspelt arithmetic or way of waiting stops the gateway at start with one line each."""
    from tokenomy.config import ConfigError, parse_config

    text = """server: {onnx_spinning: always}
cache:
  semantic: {enabled: true, embedder_arithmetic: int4}
models:
  - {name: m, deployments: [{provider: openai, base_url: "http://127.0.0.1:9", model: x}]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    issues = [str(i) for i in info.value.issues]
    assert any("line 1" in i and "server.onnx_spinning" in i and "'in-run' or 'never'" in i for i in issues)
    assert any("line 3" in i and "cache.semantic.embedder_arithmetic" in i for i in issues)
