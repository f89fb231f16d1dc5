"""A distilled student served by the gateway, alone and first in a cascade whose teacher is a fake upstream."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import RunningGateway, running_gateway

from tokenomy.config import parse_config
from tokenomy.distill.errors import StudentError
from tokenomy.gateway import Gateway
from tokenomy.ledger.stores import store_for
from tokenomy.reports.formats import to_json
from tokenomy.reports.model import ReportQuery
from tokenomy.reports.query import run_query

TEST = Path(__file__).parents[2] / "distill" / "data" / "banking77_test.jsonl"


def config(student: Path, teacher_url: str, ledger: Path) -> str:
    return f"""
models:
  - name: intent-student
    deployments:
      - {{provider: local, model: distilled, path: "{student}", pricing: {{cost_per_hour: 0.05}}}}
  - name: teacher
    deployments:
      - {{provider: openai, base_url: "{teacher_url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini,
          pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}}}
routers:
  - name: intents
    kind: cascade
    steps:
      - {{model: intent-student, checks: [{{kind: confidence, min: 0.9}}]}}
      - {{model: teacher}}
ledger: {{path: "{ledger}", flush_interval_ms: 20}}
"""


@pytest.fixture(scope="module")
async def gw(
    student_dir: Path, openai_fake: OpenAIFake, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningGateway, Path]]:
    ledger = tmp_path_factory.mktemp("students") / "ledger.db"
    async with running_gateway(config(student_dir, openai_fake.base_url, ledger)) as running:
        yield running, ledger


def examples() -> list[dict[str, str]]:
    return [json.loads(line) for line in TEST.read_text().splitlines()]


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


async def test_the_student_answers_with_its_label_and_confidence(gw: tuple[RunningGateway, Path]) -> None:
    running, _ = gw
    async with openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client:
        right = 0
        for example in examples()[:20]:
            raw = await client.chat.completions.with_raw_response.create(
                model="intent-student", messages=ask(example["text"])
            )
            reply = raw.parse()
            confidence = float(raw.headers["x-tokenomy-confidence"])
            assert 0 < confidence <= 1 and reply.usage is not None and reply.usage.completion_tokens == 1
            right += reply.choices[0].message.content == example["label"]
    assert right >= 15  # 20 test queries of 12 intents; well above chance


async def test_bad_requests_get_openai_errors(gw: tuple[RunningGateway, Path]) -> None:
    running, _ = gw
    async with openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match="set stream to false"):
            await client.chat.completions.create(model="intent-student", messages=ask("card?"), stream=True)
        with pytest.raises(openai.BadRequestError, match="some user text"):
            await client.chat.completions.create(model="intent-student", messages=[{"role": "system", "content": "x"}])


async def test_student_first_cascade_sends_only_unsure_requests_to_the_teacher(
    gw: tuple[RunningGateway, Path], openai_fake: OpenAIFake
) -> None:
    running, ledger = gw
    rows = examples()
    openai_fake.answers = {r["text"]: r["label"] for r in rows}  # the teacher knows every label
    ids: list[tuple[str, bool]] = []
    right = 0
    try:
        async with openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client:
            for example in rows:
                before = len(openai_fake.requests)
                raw = await client.chat.completions.with_raw_response.create(
                    model="intents", messages=ask(example["text"])
                )
                right += raw.parse().choices[0].message.content == example["label"]
                ids.append((raw.headers["x-request-id"], len(openai_fake.requests) > before))
    finally:
        openai_fake.answers = {}
    teacher_share = sum(sent for _, sent in ids) / len(ids)
    assert right / len(rows) >= 0.97 and 0 < teacher_share < 0.5
    await running.flush_ledger()
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    by_id = {r["request_id"]: dict(r) for r in conn.execute("SELECT * FROM requests WHERE requested_model = 'intents'")}
    conn.close()
    student_row = by_id[next(i for i, sent in ids if not sent)]
    teacher_row = by_id[next(i for i, sent in ids if sent)]
    assert student_row["route"].startswith("cascade:intents->intent-student")
    assert student_row["saved_routing_usd"] > 0 and student_row["cost_usd"] < student_row["baseline_cost_usd"]
    assert teacher_row["route"].startswith("cascade:intents->teacher")
    # tokenomy report: per task, the share of cascade requests the student answered
    store = store_for(parse_config(config(Path("unused"), "http://127.0.0.1:9/v1", ledger)).ledger)
    report = json.loads(to_json(run_query(store, ReportQuery(by="task"))))
    cascaded = [g for g in report if g["cascade_requests"]]
    assert len(cascaded) == 1 and cascaded[0]["cascade_requests"] == len(rows)
    assert cascaded[0]["student_share"] == pytest.approx(1 - teacher_share)


def test_a_broken_student_stops_the_gateway_at_start_up(student_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(student_dir, broken)
    (broken / "student.json").unlink()
    text = config(broken, "http://127.0.0.1:9/v1", tmp_path / "l.db")
    with pytest.raises(StudentError, match=f"{broken}: no student.json"):
        Gateway(parse_config(text))
    with pytest.raises(StudentError, match="no such student directory"):
        Gateway(parse_config(config(tmp_path / "missing", "http://127.0.0.1:9/v1", tmp_path / "l.db")))


async def test_a_finetuned_student_answers_through_the_gateway(finetuned_student_dir: Path, tmp_path: Path) -> None:
    text = config(finetuned_student_dir, "http://127.0.0.1:9/v1", tmp_path / "l.db")
    async with (
        running_gateway(text) as running,
        openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client,
    ):
        right = 0
        for example in examples()[:20]:
            raw = await client.chat.completions.with_raw_response.create(
                model="intent-student", messages=ask(example["text"])
            )
            reply = raw.parse()
            assert 0 < float(raw.headers["x-tokenomy-confidence"]) <= 1
            assert reply.usage is not None and reply.usage.prompt_tokens > 2 and reply.usage.completion_tokens == 1
            right += reply.choices[0].message.content == example["label"]
        with pytest.raises(openai.BadRequestError, match="set stream to false"):
            await client.chat.completions.create(model="intent-student", messages=ask("card?"), stream=True)
    assert right >= 15


def test_a_truncated_finetuned_student_stops_the_gateway_at_start_up(
    finetuned_student_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(finetuned_student_dir, broken)
    model = broken / "model.onnx"
    model.write_bytes(model.read_bytes()[:-100])
    text = config(broken, "http://127.0.0.1:9/v1", tmp_path / "l.db")
    with pytest.raises(StudentError, match=f"{model}: truncated or changed"):
        Gateway(parse_config(text))
