"""Where an all-MiniLM-L6-v2 embedding's time goes, at each batch size: one command, one table.

``.venv/bin/python bench/local/embed_profile.py`` calls ``MiniLMEmbedder.embed`` directly (no
batcher, no event loop) on batches of the benchmark's eight sentences, for each ONNX Runtime
setting (intra-op threads, spinning) and batch size, and prints per 1,000 embeddings:

- process CPU seconds (all threads; stable on a shared machine, unlike wall-clock),
- of which inside ``session.run`` (process CPU measured around each call),
- wall seconds inside ``session.run`` and in all,
- the padded tokens the model computed per real token (1.00 = no padding).

``--batcher`` adds the same figures through ``LocalProvider.send`` with N concurrent callers
(micro-batching on), so the cost of the batcher and event loop shows as the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.local.embeddings import SENTENCES, provider_caller  # noqa: E402

from tokenomy.config.models import GatewayConfig  # noqa: E402
from tokenomy.providers.local.catalog import EMBEDDING_MODEL  # noqa: E402
from tokenomy.providers.local.embeddings import EmbedItem, MiniLMEmbedder  # noqa: E402
from tokenomy.providers.local.provider import LocalProvider  # noqa: E402


class TimedSession:
    """Wraps an ONNX Runtime session: CPU and wall time inside ``run``, tokens fed."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.cpu = 0.0
        self.wall = 0.0
        self.padded = 0

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        c, w = time.process_time(), time.perf_counter()
        result = self.session.run(outputs, feed)
        self.cpu += time.process_time() - c
        self.wall += time.perf_counter() - w
        self.padded += int(feed["input_ids"].size)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def profile(embedder: MiniLMEmbedder, batch: int, total: int) -> dict[str, float]:
    """Embed ``total`` sentences in batches of ``batch``; figures per 1,000 embeddings."""
    timed = TimedSession(embedder._session)
    embedder._session = timed
    items: list[EmbedItem] = [SENTENCES[i % len(SENTENCES)] for i in range(total)]
    real = sum(len(ids) for ids in embedder.token_ids(items))
    try:
        embedder.embed(items[:batch])  # warm this shape
        timed.cpu = timed.wall = 0.0
        timed.padded = 0
        c, w = time.process_time(), time.perf_counter()
        for start in range(0, total, batch):
            embedder.embed(items[start : start + batch])
        cpu, wall = time.process_time() - c, time.perf_counter() - w
    finally:
        embedder._session = timed.session
    k = 1000 / total
    return {
        "cpu": cpu * k,
        "run_cpu": timed.cpu * k,
        "run_wall": timed.wall * k,
        "wall": wall * k,
        "padding": timed.padded / real,
    }


async def through_batcher(threads: int, concurrency: int, clients: int, total: int, batch: int) -> dict[str, float]:
    """``clients`` concurrent single-sentence callers into LocalProvider.send; figures per 1,000."""
    config = GatewayConfig.model_validate(
        {
            "models": [{"name": EMBEDDING_MODEL, "deployments": [{"provider": "local", "model": EMBEDDING_MODEL}]}],
            "local": {"embeddings": {"max_batch_size": batch, "n_threads": threads, "concurrency": concurrency}},
        }
    )
    provider = LocalProvider(config)
    await provider.start()
    call = provider_caller(provider)
    try:
        per_client = total // clients

        async def client(k: int) -> None:
            for j in range(per_client):
                await call(k + j * clients)

        await asyncio.gather(*(client(k) for k in range(clients)))  # warm-up round
        assert provider.batcher is not None
        before = provider.batcher.batches_run
        c, w = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        cpu, wall = time.process_time() - c, time.perf_counter() - w
        batches = provider.batcher.batches_run - before
    finally:
        await provider.close()
    done = per_client * clients
    return {"cpu": cpu * 1000 / done, "wall": wall * 1000 / done, "mean_batch": done / max(batches, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--total", type=int, default=1024, help="embeddings per cell")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts to compare")
    parser.add_argument("--batcher", action="store_true", help="also measure through LocalProvider.send")
    parser.add_argument("--only-batcher", action="store_true", help="skip the direct calls")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    print(f"all-MiniLM-L6-v2 (int8 weights, float32 arithmetic); {args.total} single sentences per cell;")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start. Per 1,000 embeddings:")
    print()
    print(
        "| intra-op threads | spinning | batch | CPU s | CPU s in session.run | wall s in session.run | wall s | "
        "emb/s (wall) | padded / real tokens |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in [] if args.only_batcher else threads:
        for spin in ("always", "in-run", "never"):
            if n == 1 and spin != "never":
                continue  # one thread never spins
            embedder = MiniLMEmbedder(n_threads=n, spin=spin)
            embedder.load()
            for b in batches:
                r = profile(embedder, b, args.total)
                print(
                    f"| {n} | {spin} | {b} | {r['cpu']:.2f} | {r['run_cpu']:.2f} | "
                    f"{r['run_wall']:.2f} | {r['wall']:.2f} | {1000 / r['wall']:.0f} | {r['padding']:.2f} |",
                    flush=True,
                )
            embedder.close()
    if args.batcher or args.only_batcher:
        print()
        print("Through LocalProvider.send (micro-batcher, event loop, worker thread), per 1,000 embeddings:")
        print()
        print(
            "| batches at once | intra-op threads each | clients | max batch | CPU s | wall s | emb/s (wall) | "
            "mean batch |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for concurrency, n in ((1, 2), (2, 1)):
            for clients, batch in ((1, 1), (32, 1), (32, 32)):
                r = asyncio.run(through_batcher(n, concurrency, clients, args.total, batch))
                print(
                    f"| {concurrency} | {n} | {clients} | {batch} | {r['cpu']:.2f} | {r['wall']:.2f} | "
                    f"{1000 / r['wall']:.0f} | {r['mean_batch']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
