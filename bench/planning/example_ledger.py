"""Write the worked example's ledger: 30 days of made-up chat traffic with a daily cycle.

``PYTHONPATH=src:. python bench/planning/example_ledger.py DIR`` writes ``DIR/ledger.db`` and
``DIR/tokenomy.yaml`` (a config pointing at it) for ``tokenomy plan --config DIR/tokenomy.yaml``.
"""

from __future__ import annotations

import math
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from tokenomy.ledger.record import LedgerRecord
from tokenomy.ledger.stores.sqlite import SqliteStore

START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def main() -> None:
    """30 days; 150 to 450 requests an hour following the working day; three tasks."""
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    records = []
    for hour in range(30 * 24):
        per_hour = int(300 + 150 * math.sin((hour % 24 - 8) / 24 * 2 * math.pi))
        for i in range(per_hour):
            task = rng.choice(["chat", "chat", "summarize", "extract"])
            prompt = int(rng.lognormvariate(6.5, 0.6))
            records.append(
                LedgerRecord(
                    request_id=f"{hour}-{i}",
                    ts=START + hour * 3600 + rng.random() * 3600,
                    task=task,
                    status=200,
                    prompt_tokens=prompt,
                    cached_tokens=prompt // 2 if task == "chat" else 0,
                    completion_tokens=int(rng.lognormvariate(5.0, 0.5)),
                )
            )
    store = SqliteStore(out / "ledger.db")
    store.open()
    store.write(records)
    store.close()
    models = (
        "models:\n  - name: chat\n"
        '    deployments: [{provider: openai, base_url: "https://api.openai.com/v1", model: gpt-4o-mini}]\n'
    )
    (out / "tokenomy.yaml").write_text(f'ledger: {{store: sqlite, path: "{out / "ledger.db"}"}}\n{models}')
    print(f"wrote {len(records):,} records to {out / 'ledger.db'}")


if __name__ == "__main__":
    main()
