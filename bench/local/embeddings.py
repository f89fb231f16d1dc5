"""Embeddings/s of all-MiniLM-L6-v2 with and without micro-batching, in process and over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from bench.local.quiet import QUIET

from tokenomy.config.models import Deployment, GatewayConfig
from tokenomy.pipeline.context import CallContext, Endpoint
from tokenomy.providers.local.catalog import EMBEDDING_MODEL
from tokenomy.providers.local.provider import LocalProvider

SENTENCES = [
    "The cat sits on the mat.",
    "How do I reset my password?",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "She played a beautiful sonata on the piano last night.",
    "What is the capital city of France?",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Quantum computers use qubits that can be in superposition.",
]
CLIENTS = (1, 8, 32, 64)


@dataclass
class LoadResult:
    """Throughput and latency of one load run."""

    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


Table = dict[int, LoadResult]
Caller = Callable[[int], Awaitable[None]]


async def drive(clients: int, seconds: float, call: Callable[[int], Awaitable[None]]) -> LoadResult:
    """``clients`` loops calling ``call`` back to back for ``seconds``; every latency recorded."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)
            i += clients

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return LoadResult(len(latencies), time.perf_counter() - started, latencies)


async def compare(unbatched: Caller, batched: Caller, seconds: float, reps: int) -> tuple[Table, Table]:
    """For each client count: ``reps`` runs of each mode, interleaved; the median-throughput run is kept."""
    out_u: Table = {}
    out_b: Table = {}
    for clients in CLIENTS:
        runs_u: list[LoadResult] = []
        runs_b: list[LoadResult] = []
        for _ in range(reps):
            for call, runs in ((unbatched, runs_u), (batched, runs_b)):
                await drive(clients, 0.2, call)  # settle
                runs.append(await QUIET.arun(partial(drive, clients, seconds, call)))
        out_u[clients] = sorted(runs_u, key=lambda r: r.rate)[len(runs_u) // 2]
        out_b[clients] = sorted(runs_b, key=lambda r: r.rate)[len(runs_b) // 2]
    return out_u, out_b


def provider_caller(provider: LocalProvider) -> Caller:
    """Single-sentence requests straight into LocalProvider.send (no HTTP)."""
    dep = Deployment(provider="local", model=EMBEDDING_MODEL)

    async def call(i: int) -> None:
        body = {"model": EMBEDDING_MODEL, "input": SENTENCES[i % len(SENTENCES)]}
        await provider.send(CallContext("bench", Endpoint.EMBEDDINGS, body, EMBEDDING_MODEL), dep)

    return call


async def inprocess_embeddings(seconds: float, reps: int, threads: int) -> tuple[Table, Table]:
    """LocalProvider with max_batch_size 1 against max_batch_size 32, in this process."""
    providers = []
    for batch in (1, 32):
        config = GatewayConfig.model_validate(
            {
                "models": [{"name": EMBEDDING_MODEL, "deployments": [{"provider": "local", "model": EMBEDDING_MODEL}]}],
                "local": {"embeddings": {"max_batch_size": batch, "n_threads": threads}},
            }
        )
        provider = LocalProvider(config)
        await provider.start()
        providers.append(provider)
    try:
        return await compare(provider_caller(providers[0]), provider_caller(providers[1]), seconds, reps)
    finally:
        for provider in providers:
            await provider.close()


async def gateway_embeddings(unbatched_url: str, batched_url: str, seconds: float, reps: int) -> tuple[Table, Table]:
    """Single-sentence requests over HTTP (aiohttp as a light load generator)."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        def caller(base_url: str) -> Caller:
            async def call(i: int) -> None:
                body = {"model": EMBEDDING_MODEL, "input": SENTENCES[i % len(SENTENCES)]}
                async with session.post(f"{base_url}/embeddings", json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"gateway answered {resp.status}")

            return call

        return await compare(caller(unbatched_url), caller(batched_url), seconds, reps)


def embedding_table(unbatched: dict[int, LoadResult], batched: dict[int, LoadResult]) -> list[str]:
    lines = [
        "| clients | no batching (emb/s) | p50 / p99 ms | micro-batching (emb/s) | p50 / p99 ms | speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for clients in CLIENTS:
        u, b = unbatched[clients], batched[clients]
        lines.append(
            f"| {clients} | {u.rate:.0f} | {u.pct(0.5):.1f} / {u.pct(0.99):.1f} | {b.rate:.0f} | "
            f"{b.pct(0.5):.1f} / {b.pct(0.99):.1f} | {b.rate / u.rate:.2f}x |"
        )
    return lines
