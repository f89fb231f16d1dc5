"""``tokenomy batch run --ray``: a batch file sharded over a Ray cluster.

The input is split into shard files of ``shard_lines`` lines beside the output; each shard is one
Ray task that runs :func:`run_offline` on it (the whole pipeline, in the worker), writing its own
output files, which are its checkpoint. A task that fails is retried by Ray; running the command
again re-runs only what no shard output holds yet. The shard outputs are merged into the output
at the end. Workers load the same config file, so on a cluster it must exist at the same path on
every node. Ray is imported only here, only when asked for. With ``rpm``, one token-bucket actor
paces every task, so the whole cluster sends at most ``rpm`` requests a minute.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenomy.batches.offline import Summary, errors_path, run_offline
from tokenomy.batches.rate_limit import TokenBucket, actor_pace


def split(input_path: Path, shards_dir: Path, shard_lines: int) -> list[Path]:
    """Cut the input into shard files (kept from an earlier run when already there)."""
    shards_dir.mkdir(parents=True, exist_ok=True)
    done = sorted(shards_dir.glob("shard-*.jsonl"))
    if done and (shards_dir / "complete").exists():
        return [p for p in done if not p.name.endswith((".out.jsonl", ".out.errors.jsonl"))]
    paths: list[Path] = []
    handle = None
    count = 0
    with input_path.open("rb") as source:
        for raw in source:
            if not raw.strip():
                continue
            if handle is None or count == shard_lines:
                if handle is not None:
                    handle.close()
                paths.append(shards_dir / f"shard-{len(paths):05d}.jsonl")
                handle = paths[-1].open("wb")
                count = 0
            handle.write(raw if raw.endswith(b"\n") else raw + b"\n")
            count += 1
    if handle is not None:
        handle.close()
    (shards_dir / "complete").touch()
    return paths


def _shard(
    config_path: str | None, shard: str, model: str | None, concurrency: int, limiter: Any = None
) -> dict[str, int]:
    """One shard, run in a Ray worker (paced by the job's bucket actor, when there is one)."""
    from tokenomy.config import load_config

    config = load_config(Path(config_path) if config_path else None)
    out = Path(shard).with_suffix(".out.jsonl")
    pace = actor_pace(limiter) if limiter is not None else None
    summary = asyncio.run(run_offline(config, Path(shard), out, model, concurrency, pace=pace))
    return dict(total=summary.total, skipped=summary.skipped, completed=summary.completed, failed=summary.failed,
                paced=summary.paced)  # fmt: skip


def run_on_ray(
    address: str,
    config_path: Path | None,
    input_path: Path,
    output: Path,
    model: str | None = None,
    concurrency: int = 16,
    shard_lines: int = 1000,
    on_progress: Callable[[Summary], None] | None = None,
    rpm: float | None = None,
) -> Summary:
    """Run the job on the Ray cluster at ``address`` (``local``: a private Ray on this machine).

    ``rpm``: at most this many requests a minute across all workers (one bucket actor).
    """
    import ray

    src = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    if "TOKENOMY_HOME" in os.environ:
        env["TOKENOMY_HOME"] = os.environ["TOKENOMY_HOME"]
    options: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": False}
    ray.init(address=None if address == "local" else address, **options)
    try:
        shards = split(input_path, output.with_suffix(".shards"), shard_lines)
        task = ray.remote(max_retries=3, retry_exceptions=True)(_shard)
        config = str(config_path.resolve()) if config_path else None
        limiter = ray.remote(TokenBucket).options(num_cpus=0).remote(rpm / 60) if rpm else None
        pending = [task.remote(config, str(shard), model, concurrency, limiter) for shard in shards]
        summary = Summary()
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for part in ray.get(ready):
                summary.total += part["total"]
                summary.skipped += part["skipped"]
                summary.completed += part["completed"]
                summary.failed += part["failed"]
                summary.paced += part["paced"]
            if on_progress is not None:
                on_progress(summary)
    finally:
        ray.shutdown()
    merge(shards, output)
    return summary


def merge(shards: list[Path], output: Path) -> None:
    """Concatenate the shard outputs (and error files) into the job's output files, in shard order."""
    with output.open("wb") as ok, errors_path(output).open("wb") as bad:
        for shard in shards:
            out = shard.with_suffix(".out.jsonl")
            for part, target in ((out, ok), (errors_path(out), bad)):
                if part.exists():
                    target.write(part.read_bytes())
