"""The advisor's semantic-cache and self-hosting items on crafted ledgers, checked against the true figures:
the planted reworded repeats' own cost, and ``tokenomy plan``'s own cheapest option."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
from click.testing import CliRunner
from tests.reports.helpers import MODEL_YAML, write_ledger

from tokenomy.advise.advisor import advise
from tokenomy.advise.semantic import near_duplicates, split_prompt
from tokenomy.cli import main
from tokenomy.config import parse_config
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.sqlite import SqliteStore
from tokenomy.reports.model import Window

T0 = 1_750_000_000.0
SYSTEM = {"role": "system", "content": "You answer geography questions in one line."}
PLACES = ["France", "Germany", "Spain", "Italy", "Japan", "Kenya", "Peru", "Canada", "Norway", "Egypt",
          "Chile", "India", "Ghana", "Nepal", "Cuba", "Fiji", "Laos", "Mali", "Oman", "Iran"]  # fmt: skip
TOPICS = ["the boiling point of water", "a haiku about rain", "the rules of chess", "how vaccines work",
          "the speed of light", "a limerick about cats", "the history of Rome", "what DNA is",
          "how tides work", "the plot of Hamlet", "why the sky is blue", "how a CPU works"]  # fmt: skip


def _messages(question: str, system: dict[str, str] = SYSTEM) -> str:
    return orjson.dumps([system, {"role": "user", "content": question}]).decode()


def _record(i: int, task: str, prompt: str, cost: float, **extra: object) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"{task}-{i}",
        ts=T0 + i * 30,
        task=task,
        requested_model="fast",
        served_model="fast",
        deployment="openai/gpt-4o-mini",
        provider="openai",
        prompt_tokens=40,
        completion_tokens=20,
        cache="bypass",
        cost_usd=cost,
        prompt_hash=hashlib.sha256(prompt.encode()).hexdigest()[:32],
        prompt=prompt,
        **extra,  # type: ignore[arg-type]
    )


def geography() -> tuple[list[LedgerRecord], float]:
    """Each of 20 questions asked three times in other spellings (case, punctuation, spacing) plus a control
    task of distinct questions; returns the records and the true cost of the reworded repeats."""
    out, planted, i = [], 0.0, 0
    for round_ in range(3):
        for n, place in enumerate(PLACES):
            question = [f"What is the capital of {place}?", f"what is the capital of {place.lower()}",
                        f"  What  is the capital of {place} ??"][round_]  # fmt: skip
            cost = 0.001 * (1 + n % 4)
            out.append(_record(i, "geo", _messages(question), cost))
            planted += cost if round_ else 0.0
            i += 1
    for place in PLACES:  # the same questions under another system prompt: a new context
        other = {"role": "system", "content": "Answer in French."}
        out.append(_record(i, "geo", _messages(f"What is the capital of {place}?", other), 0.002))
        i += 1
    for n in range(24):  # distinct questions, and exact repeats (the exact cache's business, not this one's)
        out.append(_record(i, "chat", _messages(f"Explain {TOPICS[n % 12]}"), 0.003))
        i += 1
    return out, planted


def test_reworded_repeats_are_found_and_priced(tmp_path: Path) -> None:
    records, planted = geography()
    write_ledger(tmp_path / "ledger.db", records)
    config = parse_config(MODEL_YAML + "ledger: {store_prompts: true}\n")
    advice = advise(SqliteStore(tmp_path / "ledger.db"), config, Window())
    semantic = [r for r in advice.recommendations if r.kind == "semantic-cache"]
    assert [r.task for r in semantic] == ["geo"]
    assert abs(semantic[0].window_saving_usd - planted) <= 0.1 * planted
    assert "audit_share" in semantic[0].action and "40 (50%)" in semantic[0].evidence[0]
    # the chat task's exact repeats are the exact cache's: advised there, not here
    assert any(r.kind == "cache" and r.task == "chat" for r in advice.recommendations)


def test_without_stored_prompts_it_says_so(tmp_path: Path) -> None:
    records, _ = geography()
    write_ledger(tmp_path / "ledger.db", records)
    advice = advise(SqliteStore(tmp_path / "ledger.db"), parse_config(MODEL_YAML), Window())
    assert not [r for r in advice.recommendations if r.kind == "semantic-cache"]
    assert any("semantic cache" in note for note in advice.notes)


def test_near_duplicates_need_the_same_context() -> None:
    a = _messages("What is the capital of Peru?")
    b = _messages("what is the capital of peru")
    c = _messages("what is the capital of peru", {"role": "system", "content": "Be brief."})
    assert split_prompt(a) == (orjson.dumps([SYSTEM, {"role": "user"}]).decode(), "What is the capital of Peru?")
    assert near_duplicates([("a", a, 1.0), ("b", b, 2.0)]) == (1, 2.0)
    assert near_duplicates([("a", a, 1.0), ("c", c, 2.0)]) == (0, 0.0)
    assert near_duplicates([("a", a, 1.0), ("a", a, 2.0)]) == (0, 0.0)  # an exact repeat


def heavy_traffic() -> tuple[list[LedgerRecord], float]:
    """A day of very long generations on an expensive model: 2,000 requests of 1,000,000 output tokens each
    (50x the volume at which the plan's self-hosted option overtakes gpt-4o-mini's API)."""
    out, spend = [], 0.0
    for i in range(2000):
        cost = 1_000_000 * 10.0 / 1e6 + 500 * 2.5 / 1e6  # gpt-4o list prices
        out.append(
            LedgerRecord(
                request_id=f"bulk-{i}",
                ts=T0 + i * 43.2,
                task="reports",
                requested_model="fast",
                served_model="gpt-4o",
                prompt_tokens=500,
                completion_tokens=1_000_000,
                cost_usd=cost,
            )
        )
        spend += cost
    return out, spend


def test_volume_past_the_break_even_gets_the_plan_with_its_money(tmp_path: Path) -> None:
    records, spend = heavy_traffic()
    ledger = tmp_path / "ledger.db"
    write_ledger(ledger, records)
    config_path = tmp_path / "tokenomy.yaml"
    config_path.write_text(MODEL_YAML + f"ledger: {{path: '{ledger}'}}\n")
    since, until = T0, T0 + 86400
    advice = advise(SqliteStore(ledger), parse_config(config_path.read_text()), Window(since, until))
    hosting = [r for r in advice.recommendations if r.kind == "self-host"]
    assert len(hosting) == 1
    # the true figure: the spend over a 30-day month minus the plan command's own cheapest option
    command = hosting[0].action.split()
    assert command[:2] == ["tokenomy", "plan"]
    result = CliRunner().invoke(main, [*command[1:], "--config", str(config_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    best = next(o for o in plan["options"] if o["name"] == plan["recommendation"])
    assert best["kind"] == "self-hosted"
    truth = spend * 30 - best["monthly_usd"]
    assert abs(hosting[0].monthly_saving_usd - truth) <= 0.1 * truth


def test_small_volume_gets_only_the_break_even_note(tmp_path: Path) -> None:
    records, _ = heavy_traffic()
    ledger = tmp_path / "ledger.db"
    write_ledger(ledger, records[::10])  # a tenth of the volume: self-hosting wins only at ~7x it
    advice = advise(SqliteStore(ledger), parse_config(MODEL_YAML), Window(T0, T0 + 86400))
    assert not [r for r in advice.recommendations if r.kind == "self-host"]
    assert any("would be the cheapest option at" in note for note in advice.notes)
