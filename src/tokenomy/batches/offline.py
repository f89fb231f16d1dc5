"""``tokenomy batch run``: a batch file run in this process through the gateway's pipeline.

Lines are read lazily and results appended to the output file (successes) and its ``.errors``
companion as they finish, flushed line by line: the output files are the checkpoint. Running the
same command again skips every ``custom_id`` already in them, so an interrupted job resumes
without repeating finished requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from tokenomy.batches import shapes
from tokenomy.batches.execute import ENDPOINTS, execute
from tokenomy.batches.jsonl import endpoint_of, iter_lines
from tokenomy.batches.owner import batch_chain
from tokenomy.batches.store import Item
from tokenomy.config.models import GatewayConfig


@dataclass
class Summary:
    """What a run did."""

    total: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    paced: int = 0  # requests that reserved from a job-wide rate limit (``--rpm``)


def errors_path(output: Path) -> Path:
    """Where failed lines go: ``out.jsonl`` -> ``out.errors.jsonl``."""
    return output.with_suffix(".errors" + (output.suffix or ".jsonl"))


def done_ids(*paths: Path) -> set[str]:
    """``custom_id``s already written to the output files (the checkpoint)."""
    found: set[str] = set()
    for path in paths:
        if path.exists():
            with path.open("rb") as handle:
                for raw in handle:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        custom_id = orjson.loads(raw).get("custom_id")
                        if isinstance(custom_id, str):
                            found.add(custom_id)
    return found


def _batch_id(input_path: Path) -> str:
    return "batch_offline_" + hashlib.sha256(str(input_path.resolve()).encode()).hexdigest()[:12]


async def run_offline(
    config: GatewayConfig,
    input_path: Path,
    output: Path,
    model: str | None = None,
    concurrency: int = 16,
    on_progress: Callable[[Summary], None] | None = None,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> Summary:
    """Run every line of ``input_path`` not already in ``output``; returns the counts.

    ``pace``, when given, is awaited before each request is sent (a job-wide rate limit).
    """
    endpoint = endpoint_of(input_path)
    if endpoint not in ENDPOINTS:
        raise ValueError(f"the input's url is {endpoint!r}; use one of {', '.join(ENDPOINTS)}")
    from tokenomy.gateway import Gateway  # the command line imports the gateway only when it runs

    gw = Gateway(config.model_copy(update={"batches": config.batches.model_copy(update={"enabled": False})}))
    await gw.start()
    for _ in range(6000):  # local models load in the background
        if all(gw.readiness().values()):
            break
        await asyncio.sleep(0.05)
    chain = batch_chain(gw)
    batch_id = _batch_id(input_path)
    summary = Summary()
    skip = done_ids(output, errors_path(output))
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    with output.open("ab") as ok_file, errors_path(output).open("ab") as bad_file:

        def write(handle: IO[bytes], item: Item, result: dict[str, Any]) -> None:
            handle.write(orjson.dumps(shapes.output_line(batch_id, item.line, item.custom_id, result)) + b"\n")
            handle.flush()

        async def one(item: Item) -> None:
            try:
                ok, result = await execute(chain, endpoint, batch_id, item, "default", None)
                write(ok_file if ok else bad_file, item, result)
                summary.completed += ok
                summary.failed += not ok
                if on_progress is not None:
                    on_progress(summary)
            finally:
                slots.release()

        try:
            for number, item, error in iter_lines(input_path, endpoint):
                summary.total += 1
                if error is not None:  # a duplicate or another endpoint: reported, not run
                    bad = Item(number, None, "failed", None, None)
                    write(bad_file, bad, {"response": None, "error": error})
                    summary.failed += 1
                    continue
                assert item is not None
                if item.custom_id in skip:
                    summary.skipped += 1
                    continue
                if item.request is None:  # a malformed line
                    write(bad_file, item, item.result or {})
                    summary.failed += 1
                    continue
                if model:
                    item.request["model"] = model
                await slots.acquire()
                if pace is not None:
                    await pace()
                    summary.paced += 1
                task = asyncio.create_task(one(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            await gw.close()
    return summary
