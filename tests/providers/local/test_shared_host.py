"""The embedded model on a shared host: threads from the CPUs it may use, no degenerate loops, visible queueing."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tokenomy.errors import GatewayError
from tokenomy.providers.local.cpus import cgroup_cpu_limit, usable_cpus
from tokenomy.providers.local.generation import Finished, LlamaEngine
from tokenomy.providers.local.loop_guard import repeating
from tokenomy.providers.local.params import GenerationParams, TextPrompt
from tokenomy.telemetry import metrics


def test_cpus_follow_the_cgroup_quota_and_affinity(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert cgroup_cpu_limit(cpu_max) == 1.5
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(cpu_max) == min(affinity, 2)
    cpu_max.write_text("max 100000\n")
    assert cgroup_cpu_limit(cpu_max) is None
    assert usable_cpus(cpu_max) == affinity
    assert LlamaEngine().n_threads == usable_cpus()


MAX_TOKENS = 96
LOOPING = TextPrompt(text="la Femme, la Femme, la Femme, la Femme,")  # loops at temperature 0, penalty or not


async def _finish(engine: LlamaEngine) -> Finished:
    handle = engine.submit(LOOPING, GenerationParams(max_tokens=MAX_TOKENS, temperature=0.0, top_p=1.0))
    finished = None
    async for event in handle.events():
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


async def test_loop_guard_and_repeat_penalty_on_a_degenerate_loop() -> None:
    engine = LlamaEngine(n_threads=1, max_queue=1)
    await asyncio.to_thread(engine.load, False)
    penalties: list[float] = []
    generate = engine._llm.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        penalties.append(kwargs["repeat_penalty"])
        return generate(*args, **kwargs)

    engine._llm.generate = spy
    try:
        engine.loop_guard = False
        looped = await _finish(engine)
        engine.loop_guard = True
        guarded = await _finish(engine)
        with pytest.raises(GatewayError, match=r"has 1 requests waiting \(about \d+ s of work"):
            for _ in range(3):
                engine.submit(LOOPING, GenerationParams(max_tokens=1, temperature=0.0, top_p=1.0))
    finally:
        engine.close()
    assert penalties[:2] == [1.1, 1.1], "the default repeat penalty reaches llama.cpp"
    assert looped.finish_reason == "length", "without the guard this prompt loops to max_tokens"
    assert guarded.finish_reason == "stop" and guarded.completion_tokens <= 40 and engine.loops_stopped == 1
    text = metrics.render()[0].decode()
    assert 'tokenomy_local_queue_wait_seconds_count{model="smollm2-135m-instruct"}' in text


def test_repeating_tails() -> None:
    assert repeating([7, 1, 2, 3] * 10)
    assert repeating([5] * 32) and not repeating([5] * 31)
    assert not repeating(list(range(64)))
    assert not repeating([1, 2, 3] * 8 + [4])
