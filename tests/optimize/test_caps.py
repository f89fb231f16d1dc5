"""``tokenomy optimize caps``: per-task output caps from the completion tokens in a real SQLite ledger."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner

from tokenomy.cli import main
from tokenomy.config import parse_config
from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.sqlite import SqliteStore


def _ledger(path: Path) -> dict[str, list[int]]:
    rng = random.Random(5)
    store = SqliteStore(path)
    store.open()
    counted: dict[str, list[int]] = {"summarize": [], "chat": []}
    records = []
    for i in range(400):
        task = "summarize" if i % 4 else "chat"
        tokens = rng.randint(50, 400) if task == "summarize" else rng.randint(5, 60)
        status = 500 if i % 50 == 0 else 200
        cache = "hit-exact" if i % 33 == 0 else "miss"
        if status < 400 and cache == "miss":
            counted[task].append(tokens)
        records.append(LedgerRecord(request_id=f"r{i}", ts=1.0e9 + i, task=task, status=status, cache=cache,
                                    completion_tokens=tokens))  # fmt: skip
    records += [LedgerRecord(request_id=f"x{i}", ts=1.0e9, task="rare", completion_tokens=9) for i in range(3)]
    store.write(records)
    store.close()
    return counted


def test_caps_are_a_percentile_of_real_answers_times_the_margin(tmp_path: Path) -> None:
    counted = _ledger(tmp_path / "ledger.db")
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
        f"ledger: {{path: '{tmp_path / 'ledger.db'}'}}\n"
    )
    result = CliRunner().invoke(main, ["optimize", "caps", "--config", str(config), "--min-requests", "50"])
    assert result.exit_code == 0, result.output
    assert "rare: 3 answers" in result.output  # too few: no cap, said on stderr
    rules_text = result.output[result.output.index("optimize:") :]
    rules = yaml.safe_load(rules_text)["optimize"]["rules"]
    caps = {rule["task"]: rule["max_tokens"] for rule in rules}
    for task, tokens in counted.items():
        assert caps[task] == math.ceil(float(np.percentile(tokens, 99)) * 1.5)
    assert "rare" not in caps
    # the printed block is valid configuration
    base = "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
    assert parse_config(base + rules_text).optimize.rules[0].max_tokens == caps["summarize"]


def test_a_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments: [{provider: openai, base_url: 'http://127.0.0.1:9', model: m}]\n"
        f"ledger: {{path: '{tmp_path / 'nope' / 'ledger.db'}'}}\n"
    )
    result = CliRunner().invoke(main, ["optimize", "caps", "--config", str(config)])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output
