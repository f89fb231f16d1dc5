"""``tokenomy batch run``: in-process, through the pipeline, resumable from its output files."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
from pathlib import Path

from tests.batches.test_batch_api import chat_line
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake

from tokenomy.batches.offline import run_offline
from tokenomy.config import parse_config


def config_text(url: str) -> str:
    return f"""
ledger: {{enabled: false}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{url}", api_key: "${{T_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini}}
"""


def write_input(path: Path, n: int) -> None:
    rows = [chat_line(f"c{i}", f"line {i}", model="ignored") for i in range(n)]
    rows.insert(5, "{broken")
    path.write_text("\n".join(rows) + "\n")


async def test_run_offline_writes_every_line_once_and_resumes(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = parse_config(config_text(openai_fake.base_url))
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 30)
    # a first, interrupted run: pretend ten lines were already done
    first = await run_offline(config, source, out, model="fast", concurrency=4)
    assert (first.total, first.completed, first.failed, first.skipped) == (31, 30, 1, 0)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:10]) + "\n")
    openai_fake.reset()
    second = await run_offline(config, source, out, model="fast", concurrency=4)
    assert second.skipped == 10 and second.completed == 20
    assert len(openai_fake.requests) == 20  # finished lines are not sent again
    ids = collections.Counter(json.loads(line)["custom_id"] for line in out.read_text().splitlines())
    assert ids == collections.Counter(f"c{i}" for i in range(30))
    errors = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert errors[0]["error"]["code"] == "invalid_json_line" and errors[0]["error"]["line"] == 6


async def test_the_command_line(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    (tmp_path / "gw.yaml").write_text(config_text(openai_fake.base_url))
    source = tmp_path / "in.jsonl"
    write_input(source, 3)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from tokenomy.cli import main; main()", "batch", "run", "--input", str(source),
        "--model", "fast", "--config", str(tmp_path / "gw.yaml"), "--rpm", "60000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TOKENOMY_HOME": str(tmp_path)},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, stderr  # the broken line failed
    assert "4 lines: 3 completed, 1 failed" in stdout.decode()
    assert "3 requests paced to 60000 a minute" in stdout.decode()  # the job-wide limit, in process
    assert len((tmp_path / "in.output.jsonl").read_text().splitlines()) == 3
