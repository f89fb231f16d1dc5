"""A gateway serving a hosted model keeps the heavy libraries of the offline commands out of memory.

numpy, SciPy, scikit-learn, rich, ONNX Runtime and llama.cpp belong to the advisor, reports, the
compressor, embeddings and local models; imported at start they tripled a gateway process's idle
memory (about 60 MB without them, 155 MB with them). The check reads the served process's memory map
after chat and embeddings requests, so an import moved back to the top of a module fails here.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import aiohttp
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.imports import imported_by
from tests.support.serve_process import start_serve

HEAVY = ("numpy", "scipy", "sklearn", "onnxruntime", "llama_cpp", "usearch", "torch")


def _mapped(pid: int) -> set[str]:
    """Heavy packages whose native libraries are mapped into ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in HEAVY if f"site-packages/{name}/" in maps or f"site-packages/{name}." in maps}


async def test_serving_a_hosted_model_maps_no_heavy_library(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"""
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: gpt-4o-mini}}
  - name: embed
    deployments:
      - {{provider: openai, base_url: "{openai_fake.base_url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}",
          model: text-embedding-3-small}}
"""
    )
    openai_fake.reset()
    proc, url = await start_serve(config, tmp_path, output=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            chat = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
            for headers in ({}, {"cache-control": "no-cache"}, {}):  # a miss, a stored miss, a hit
                async with http.post(f"{url}/v1/chat/completions", json=chat, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
            async with http.post(f"{url}/v1/embeddings", json={"model": "embed", "input": ["a", "b"]}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{url}/metrics") as resp:
                assert resp.status == 200
        assert _mapped(proc.pid) == set()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


def test_the_command_line_imports_commands_when_they_run() -> None:
    assert imported_by("from tokenomy.cli import main", "numpy", "rich", "sklearn", "tokenomy.evaluate.cli") == []
