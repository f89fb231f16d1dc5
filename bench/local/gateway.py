"""``tokenomy serve`` with the embedded models, in a subprocess, for the local benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.gateway_proc import free_port
from bench.local.quiet import QUIET

from tokenomy.providers.local.catalog import EMBEDDING_MODEL, GENERATION_MODEL

ROOT = Path(__file__).resolve().parents[2]


def gateway_command(config: Path, port: int) -> list[str]:
    """``tokenomy serve`` of this checkout (its ``src`` first on the path, see ``gateway``)."""
    return [sys.executable, "-m", "tokenomy.cli", "serve", "--config", str(config), "--port", str(port)]


@contextmanager
def gateway(
    name: str, threads: int, workdir: Path, generation: bool = True, embeddings: dict[str, Any] | None = None
) -> Iterator[str]:
    """``tokenomy serve`` with the embedded models; yields the OpenAI base URL once /readyz is 200.

    ``embeddings``: the ``local.embeddings`` settings (default: the gateway's own).
    """
    import json
    import urllib.request

    config = workdir / f"gateway-{name}.yaml"
    chat = f"""
  - name: {GENERATION_MODEL}
    deployments: [{{provider: local, model: {GENERATION_MODEL}}}]"""
    config.write_text(
        f"""server: {{host: 127.0.0.1, log_level: warning}}
cache: {{exact: {{enabled: false}}}}  # every request must reach the model
local:
  generation: {{n_threads: {threads}}}
  embeddings: {json.dumps(embeddings or {})}
models:{chat if generation else ""}
  - name: {EMBEDDING_MODEL}
    deployments: [{{provider: local, model: {EMBEDDING_MODEL}}}]
"""
    )
    port = free_port()
    log = (workdir / f"gateway-{name}.log").open("w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT / "src"), os.environ.get("PYTHONPATH"))))}
    proc = subprocess.Popen(gateway_command(config, port), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    QUIET.pids.add(proc.pid)
    try:
        deadline = time.time() + 300  # loading the models takes long on a busy machine
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {proc.returncode}: {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the gateway did not become ready: {log.name}")
            time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        QUIET.pids.discard(proc.pid)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
