"""Embeddings/s of all-MiniLM-L6-v2 with and without micro-batching, in process and over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

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


def modes(threads: int) -> dict[str, dict[str, Any]]:
    """The embedding settings compared: batching off and on, float32 (the default) and int8 arithmetic.

    All run one batch at a time on ``threads`` ONNX Runtime threads (the defaults on a machine
    with that many usable CPUs); ``int8`` is ``local.embeddings.arithmetic: int8``.
    """
    common: dict[str, Any] = {"concurrency": 1, "n_threads": threads}
    return {
        "off": {"max_batch_size": 1, **common},
        "on": {"max_batch_size": 32, **common},
        "int8, off": {"max_batch_size": 1, "arithmetic": "int8", **common},
        "int8, on": {"max_batch_size": 32, "arithmetic": "int8", **common},
    }


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


async def compare(callers: dict[str, Caller], seconds: float, reps: int) -> dict[str, Table]:
    """For each client count: ``reps`` runs of each mode, interleaved; the median-throughput run is kept."""
    out: dict[str, Table] = {mode: {} for mode in callers}
    for clients in CLIENTS:
        runs: dict[str, list[LoadResult]] = {mode: [] for mode in callers}
        for _ in range(reps):
            for mode, call in callers.items():
                await drive(clients, 0.2, call)  # settle
                runs[mode].append(await QUIET.arun(partial(drive, clients, seconds, call)))
        for mode, results in runs.items():
            out[mode][clients] = sorted(results, key=lambda r: r.rate)[len(results) // 2]
    return out


def provider_caller(provider: LocalProvider) -> Caller:
    """Single-sentence requests straight into LocalProvider.send (no HTTP)."""
    dep = Deployment(provider="local", model=EMBEDDING_MODEL)

    async def call(i: int) -> None:
        body = {"model": EMBEDDING_MODEL, "input": SENTENCES[i % len(SENTENCES)]}
        await provider.send(CallContext("bench", Endpoint.EMBEDDINGS, body, EMBEDDING_MODEL), dep)

    return call


async def inprocess_embeddings(seconds: float, reps: int, threads: int) -> dict[str, Table]:
    """LocalProvider in this process, once per mode of :func:`modes`."""
    providers: dict[str, LocalProvider] = {}
    for mode, settings in modes(threads).items():
        config = GatewayConfig.model_validate(
            {
                "models": [{"name": EMBEDDING_MODEL, "deployments": [{"provider": "local", "model": EMBEDDING_MODEL}]}],
                "local": {"embeddings": settings},
            }
        )
        providers[mode] = LocalProvider(config)
        await providers[mode].start()
    try:
        return await compare({mode: provider_caller(p) for mode, p in providers.items()}, seconds, reps)
    finally:
        for provider in providers.values():
            await provider.close()


async def gateway_embeddings(urls: dict[str, str], seconds: float, reps: int) -> dict[str, Table]:
    """Single-sentence requests over HTTP (aiohttp as a light load generator)."""
    import aiohttp

    # Idle connections are dropped after 1 s here, before the gateway's keep-alive timeout closes them:
    # one session serves every mode in turn, so a connection idles through the other modes' phases, and
    # a POST written to a connection the server is closing fails (clients retry only idempotent calls).
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=1.0)
    async with aiohttp.ClientSession(connector=connector) as session:

        def caller(base_url: str) -> Caller:
            async def call(i: int) -> None:
                body = {"model": EMBEDDING_MODEL, "input": SENTENCES[i % len(SENTENCES)]}
                async with session.post(f"{base_url}/embeddings", json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"gateway answered {resp.status}")

            return call

        return await compare({mode: caller(url) for mode, url in urls.items()}, seconds, reps)


def embedding_table(tables: dict[str, Table]) -> list[str]:
    """Embeddings/s per mode; batching on over off, and int8 arithmetic over the float32 default."""
    lines = [
        "| clients | off (emb/s) | p50 / p99 ms | on (emb/s) | p50 / p99 ms | on / off | int8 off (emb/s) | "
        "int8 on (emb/s) | p50 / p99 ms | int8 on / int8 off | int8 on / off |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clients in CLIENTS:
        u, b = tables["off"][clients], tables["on"][clients]
        iu, ib = tables["int8, off"][clients], tables["int8, on"][clients]
        lines.append(
            f"| {clients} | {u.rate:.0f} | {u.pct(0.5):.1f} / {u.pct(0.99):.1f} | {b.rate:.0f} | {b.pct(0.5):.1f} / "
            f"{b.pct(0.99):.1f} | {b.rate / u.rate:.2f}x | {iu.rate:.0f} | {ib.rate:.0f} | {ib.pct(0.5):.1f} / "
            f"{ib.pct(0.99):.1f} | {ib.rate / iu.rate:.2f}x | {ib.rate / u.rate:.2f}x |"
        )
    return lines
