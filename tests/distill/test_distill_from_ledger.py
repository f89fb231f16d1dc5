"""``distill train --from-ledger``: a teacher's logged answers (a fake upstream behind the gateway) become labels."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_upstream import OpenAIFake
from tests.support.gateway import running_gateway

from tokenomy.cli import main
from tokenomy.distill.ledger import normalise_label

DATA = Path(__file__).parent / "data"


def test_answers_become_labels_by_the_documented_rules() -> None:
    assert normalise_label(' "Card_Arrival." ') == "card_arrival"
    assert normalise_label("`lost  or\tstolen card`") == "lost or stolen card"
    assert normalise_label("\u201cRefund\u201d") == "refund"
    assert normalise_label("  ") == ""


def config_text(teacher_url: str, ledger: Path) -> str:
    return f"""
models:
  - name: teacher
    deployments:
      - {{provider: openai, base_url: "{teacher_url}", api_key: "${{T_OPENAI_KEY:-{OPENAI_KEY}}}", model: gpt-4o-mini}}
ledger: {{path: "{ledger}", flush_interval_ms: 20, store_prompts: true}}
"""


async def test_a_student_learns_the_teachers_logged_answers(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (DATA / "banking77_train.jsonl").read_text().splitlines()]
    per_label: dict[str, int] = {}
    chosen = []
    for row in rows:  # 12 per intent is enough to check the path; the full data is the benchmark's
        if per_label.get(row["label"], 0) < 12:
            per_label[row["label"]] = per_label.get(row["label"], 0) + 1
            chosen.append(row)
    # the teacher answers in free-text form; normalisation turns "Card_arrival." back into the label
    openai_fake.answers = {r["text"]: f"{r['label'].capitalize()}." for r in chosen}
    openai_fake.answers["Tell me everything about my account"] = "Your account " + "is fine. " * 20
    ledger = tmp_path / "ledger.db"
    text = config_text(openai_fake.base_url, ledger)
    try:
        async with running_gateway(text) as running:
            async with openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as client:
                for prompt in [*(r["text"] for r in chosen), "Tell me everything about my account"]:
                    await client.chat.completions.create(
                        model="teacher",
                        messages=[
                            {"role": "system", "content": "Answer with the intent."},
                            {"role": "user", "content": prompt},
                        ],
                        extra_headers={"x-tokenomy-task": "intents"},
                    )
            await running.flush_ledger()
    finally:
        openai_fake.answers = {}
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    out = tmp_path / "student"
    result = CliRunner().invoke(
        main,
        [
            "distill",
            "train",
            "--from-ledger",
            "--task",
            "intents",
            "--since",
            "1d",
            "--config",
            str(config),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == 12 and summary["trained_examples"] == len(chosen)
    assert summary["logged_requests"] == len(chosen) + 1
    assert list(summary["left_out"].values()) == [1]  # the long free-text answer
    manifest = json.loads((out / "student.json").read_text())
    assert sorted(manifest["labels"]) == sorted(per_label) and manifest["task"] == "intents"
    # the student it wrote serves the held-out test queries well above chance
    code = CliRunner().invoke(
        main,
        ["distill", "evaluate", "--model", str(out), "--data", str(DATA / "banking77_test.jsonl"), "--format", "json"],
    )
    assert code.exit_code == 0, code.output
    assert json.loads(code.stdout)["accuracy_without_abstention"] > 0.7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "x"], "give --data FILE or --from-ledger"),
        (["--from-ledger"], "--from-ledger needs --task"),
    ],
)
def test_bad_combinations_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["distill", "train", *args, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and message in result.output


def test_a_missing_ledger_is_named(openai_fake: OpenAIFake, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(config_text(openai_fake.base_url, tmp_path / "empty.db"))
    result = CliRunner().invoke(
        main,
        [
            "distill",
            "train",
            "--from-ledger",
            "--task",
            "nothing",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 1 and "no ledger at" in result.output and "empty.db" in result.output
