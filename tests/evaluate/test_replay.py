"""Replay and ``--from-ledger``: a ledger filled by real requests through the gateway, replayed on a cheaper model."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

import openai
import pytest
from tests.evaluate.helpers import MODELS, RecordedFake, gateway_yaml, routerbench_items
from tests.support.gateway import running_gateway

from tokenomy.config import load_config
from tokenomy.evaluate.command import EvalOptions
from tokenomy.evaluate.ledger_source import LedgerSourceError, ledger_dataset
from tokenomy.evaluate.replay import MONTH_S, run_replay
from tokenomy.evaluate.scorers.text import Choice
from tokenomy.routing.learned.outcomes import load_outcomes

ROOT = Path(__file__).parents[2]
N = 24


async def test_replay_logged_traffic_on_a_cheaper_model(tmp_path: Path) -> None:
    items = routerbench_items()[:N]
    ledger = tmp_path / "ledger.db"
    async with RecordedFake(items) as fake:
        await fake.start()
        cfg_file = tmp_path / "gw.yaml"
        cfg_file.write_text(
            gateway_yaml(fake.base_url).replace(
                "ledger: {enabled: false}", f"ledger: {{path: '{ledger}', store_prompts: true, flush_interval_ms: 20}}"
            )
        )
        config = load_config(cfg_file)
        async with running_gateway(config) as gw:
            client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
            for i, item in enumerate(items):  # production traffic on gpt-4: half streamed, half not
                messages = [{"role": "user", "content": item["prompt"]}]
                if i % 2:
                    stream = await client.chat.completions.create(
                        model="gpt-4",
                        messages=messages,
                        stream=True,
                        extra_headers={"x-tokenomy-task": "qa"},  # type: ignore[arg-type]
                    )
                    async for _ in stream:
                        pass
                else:
                    await client.chat.completions.create(
                        model="gpt-4",
                        messages=messages,
                        extra_headers={"x-tokenomy-task": "qa"},  # type: ignore[arg-type]
                    )
            await client.chat.completions.create(  # another task: not replayed
                model="gpt-4", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-tokenomy-task": "chat"}
            )
            await gw.flush_ledger()
            conn = sqlite3.connect(ledger)
            logged = conn.execute("SELECT prompt, response, cost_usd FROM requests WHERE task = 'qa'").fetchall()
            conn.close()
            assert len(logged) == N and all(r[1] for r in logged)
            gpt4 = MODELS["gpt-4"][0]
            assert {r[1] for r in logged} == {i["responses"][gpt4] for i in items}  # answers stored as served

            # --from-ledger: the task's stored prompts, logged answers as references
            data = ledger_dataset(config, "qa")
            assert len(data.items) == N and data.items[0].expected
            with pytest.raises(LedgerSourceError, match="no successful chat requests"):
                ledger_dataset(config, "nope")

            opts = EvalOptions(
                models=["mistral-7b"], scorer="choice", out=tmp_path / "replay", config=config, gateway_url=gw.url
            )
            doc = await run_replay(config, "qa", opts)
            await gw.flush_ledger()  # the replay's own calls are in the ledger, marked, and not taken for traffic
            assert len(ledger_dataset(config, "qa").items) == N

    extract = Choice().extract
    mistral = MODELS["mistral-7b"][0]
    agree = [extract(i["responses"][mistral]) == extract(i["responses"][gpt4]) for i in items]
    assert doc["n"] == N and doc["errors"] == 0
    assert doc["agreement"] == pytest.approx(sum(agree) / N)
    assert doc["ci_low"] <= doc["agreement"] <= doc["ci_high"]
    assert doc["sample_cost_logged_usd"] == pytest.approx(sum(r[2] for r in logged))
    assert 0 < doc["sample_cost_candidate_usd"] < doc["sample_cost_logged_usd"] / 10
    assert doc["logged_models"] == {"gpt-4": N}
    # N requests in the last hour or so (the window is counted as at least an hour): scaled to 30 days
    assert doc["monthly_requests"] <= N * MONTH_S / 3600 + 1
    per_request = (doc["sample_cost_logged_usd"] - doc["sample_cost_candidate_usd"]) / N
    assert doc["projected_monthly_saving_usd"] == pytest.approx(per_request * doc["monthly_requests"], rel=0.01)

    outcomes = load_outcomes(tmp_path / "replay" / "outcomes.csv")
    assert outcomes.models == ["gpt-4", "mistral-7b"] and len(outcomes) == N
    assert outcomes.scores[:, 0].sum() == N and outcomes.scores[:, 1].sum() == sum(agree)


async def test_replay_command_line(tmp_path: Path) -> None:
    """The command in its own process, with the gateway in process, on an empty ledger and a filled one."""
    items = routerbench_items()[:4]
    ledger = tmp_path / "ledger.db"
    async with RecordedFake(items) as fake:
        await fake.start()
        cfg = tmp_path / "gw.yaml"
        cfg.write_text(
            gateway_yaml(fake.base_url).replace(
                "ledger: {enabled: false}", f"ledger: {{path: '{ledger}', store_prompts: true, flush_interval_ms: 20}}"
            )
        )
        args = [
            sys.executable,
            "-m",
            "tokenomy.cli",
            "replay",
            "--task",
            "qa",
            "--candidate",
            "yi-34b",
            "--scorer",
            "choice",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "r"),
            "--format",
            "json",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        async with running_gateway(load_config(cfg)) as gw:
            client = openai.AsyncOpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
            for item in items:
                await client.chat.completions.create(
                    model="gpt-35",
                    messages=[{"role": "user", "content": item["prompt"]}],
                    extra_headers={"x-tokenomy-task": "qa"},
                )
            await gw.flush_ledger()
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
        doc = json.loads(out)
        assert doc["n"] == 4 and doc["logged_models"] == {"gpt-35": 4} and "projected_monthly_saving_usd" in doc
        bad = await asyncio.create_subprocess_exec(
            *[a if a != "qa" else "nothing" for a in args],
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await bad.communicate()
        assert bad.returncode == 2 and b"no successful chat requests with stored prompts for task 'nothing'" in err
