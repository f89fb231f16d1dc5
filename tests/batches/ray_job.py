"""Run by ``test_ray_run.py`` inside a private network namespace: the same job on Ray and in process.

Prints one JSON line: the two summaries, the custom_ids of each output, and how many requests
the fake upstream saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.batches.test_batch_api import chat_line
from tests.fakes.openai_upstream import start_openai_fake

from tokenomy.batches.offline import run_offline
from tokenomy.batches.ray_run import run_on_ray
from tokenomy.config import load_config


def main(work: Path, lines: int) -> None:
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["fake"] = loop.run_until_complete(start_openai_fake(api_key="sk-x"))
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    while "fake" not in holder:
        time.sleep(0.01)
    fake = holder["fake"]
    (work / "gw.yaml").write_text(
        f"""
ledger: {{enabled: false}}
models:
  - name: fast
    deployments:
      - {{provider: openai, base_url: "{fake.base_url}", api_key: "${{K:-sk-x}}", model: gpt-4o-mini}}
"""
    )
    rows = [chat_line(f"c{i}", f"line {i}") for i in range(lines)]
    rows.insert(7, "{broken")
    (work / "in.jsonl").write_text("\n".join(rows) + "\n")
    started = time.perf_counter()
    # a job-wide rate limit (one bucket actor) that every shard task reserves from; high enough
    # not to slow the test: what is checked is that every request went through it
    on_ray = run_on_ray("local", work / "gw.yaml", work / "in.jsonl", work / "ray.jsonl", shard_lines=100, rpm=600_000)
    ray_s = time.perf_counter() - started  # includes starting the local Ray (about 10 s here)
    seen_by_ray = len(fake.requests)
    config = load_config(work / "gw.yaml")
    started = time.perf_counter()
    local = asyncio.run(run_offline(config, work / "in.jsonl", work / "local.jsonl"))
    local_s = time.perf_counter() - started

    def answers(path: Path) -> dict[str, str]:
        out = {}
        for raw in path.read_text().splitlines():
            line = json.loads(raw)
            out[line["custom_id"]] = line["response"]["body"]["choices"][0]["message"]["content"]
        return out

    print(json.dumps({
        "ray": vars(on_ray), "local": vars(local), "ray_s": round(ray_s, 2), "local_s": round(local_s, 2),
        "upstream_seen_by_ray": seen_by_ray,
        "ray_lines": len((work / "ray.jsonl").read_text().splitlines()),
        "same_answers": answers(work / "ray.jsonl") == answers(work / "local.jsonl"),
        "ray_errors": (work / "ray.errors.jsonl").read_text().count("invalid_json_line"),
    }))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
