"""The outcomes file: per prompt, for each model, whether it was right and what it cost.

Format (CSV, ``.csv`` or ``.csv.gz``; or JSON Lines, ``.jsonl`` or ``.jsonl.gz``, one object per row
with the same keys as the CSV columns):

* ``prompt``: the prompt text (required). A Python/JSON list of strings (RouterBench's export
  writes ``['…']``; JSONL may hold a real list) is read as its strings joined by blank lines,
  so that training sees the text the gateway will see;
* ``split``: optional, e.g. ``train`` / ``test``; an empty or missing value gets one from
  :func:`hash_split` (a hash of the prompt);
* ``<model>``: the model's outcome, ``1``/``0``, ``true``/``false`` or a score in [0, 1];
* ``<model>|total_cost``: what answering this prompt cost with that model, in USD.

The models are the names with a ``|total_cost`` column. Other columns (``sample_id``,
``eval_name``, ``<model>|model_response``, …) are ignored. A file without cost columns (RouteLLM's
``mmlu_responses.csv.gz``) names its models through :class:`CostSpec`: a flat cost per query or
per-token prices. A row with an empty outcome or cost is skipped (and counted in ``skipped``).
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

COST_SUFFIX = "|total_cost"
PROMPT = "prompt"
SPLIT = "split"
TASK_COLUMNS = ("task", "eval_name", "subject")
HOLDOUT_FRACTION = 0.2
"""Share of the rows without a ``split`` value that :func:`hash_split` puts in ``test``."""

FloatArray = npt.NDArray[np.float64]

_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})


class OutcomesError(ValueError):
    """A malformed outcomes file; the message names the file, the row and the column."""


@dataclass(frozen=True, slots=True)
class CostSpec:
    """Costs for models the file has no ``|total_cost`` column for.

    ``per_query``: USD per query. ``per_token``: ``(input, output)`` USD per 1M tokens, with the
    prompt's tokens counted by ``cl100k_base`` and ``output_tokens`` assumed per answer.
    """

    per_query: Mapping[str, float] = field(default_factory=dict)
    per_token: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    output_tokens: int = 1

    @property
    def models(self) -> list[str]:
        return [*self.per_query, *(m for m in self.per_token if m not in self.per_query)]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Rows of an outcomes file: ``scores`` and ``costs`` are ``(rows, models)`` arrays."""

    prompts: list[str]
    splits: list[str]
    models: list[str]
    scores: FloatArray
    costs: FloatArray
    skipped: int = 0
    tasks: list[str] = field(default_factory=list)
    """Each row's task (column ``task``, else ``eval_name``, else ``subject``); empty when the file has none."""

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, mask: Sequence[bool] | npt.NDArray[np.bool_]) -> Outcomes:
        """The rows where ``mask`` is true."""
        keep = np.asarray(mask, dtype=bool)
        index = np.flatnonzero(keep)
        return Outcomes(
            prompts=[self.prompts[i] for i in index],
            splits=[self.splits[i] for i in index],
            models=list(self.models),
            scores=self.scores[keep],
            costs=self.costs[keep],
            skipped=self.skipped,
            tasks=[self.tasks[i] for i in index] if self.tasks else [],
        )

    def split(self, name: str) -> Outcomes:
        """The rows of split ``name``; an error listing the splits there are when it has none."""
        mask = [s == name for s in self.splits]
        if not any(mask):
            raise OutcomesError(f"no rows with split {name!r}; the file's splits: {sorted(set(self.splits))}")
        return self.select(mask)

    def restrict(self, models: Sequence[str]) -> Outcomes:
        """Only the columns of ``models`` (in that order)."""
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise OutcomesError(f"unknown model(s) {unknown}; the file has: {self.models}")
        cols = [self.models.index(m) for m in models]
        scores, costs = self.scores[:, cols], self.costs[:, cols]
        return Outcomes(self.prompts, self.splits, list(models), scores, costs, self.skipped, self.tasks)


def hash_split(prompt: str, holdout: float = HOLDOUT_FRACTION) -> str:
    """``test`` for a deterministic ``holdout`` share of prompts (by SHA-256 of the text), else ``train``."""
    bucket = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "test" if bucket < holdout else "train"


def load_outcomes(path: str | Path, cost: CostSpec | None = None) -> Outcomes:
    """Read and validate an outcomes file (see the module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise OutcomesError(f"{path}: no such outcomes file")
    name = path.name.lower()
    try:
        with _open_text(path) as text:
            if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
                rows = list(_jsonl_rows(path, text))
            else:
                rows = list(_csv_rows(path, text))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise OutcomesError(f"{path}: cannot read it as an outcomes file ({exc})") from exc
    return parse_rows(rows, source=str(path), cost=cost)


def parse_rows(rows: Sequence[tuple[int, Mapping[str, Any]]], source: str, cost: CostSpec | None = None) -> Outcomes:
    """Validate ``(line number, row)`` pairs into :class:`Outcomes`."""
    cost = cost or CostSpec()
    if not rows:
        raise OutcomesError(f"{source}: no rows")
    columns: dict[str, None] = {}
    for _, row in rows:
        columns.update(dict.fromkeys(row))
    if PROMPT not in columns:
        raise OutcomesError(f"{source}: no {PROMPT!r} column (columns: {sorted(columns)[:12]})")
    models = [c[: -len(COST_SUFFIX)] for c in columns if c.endswith(COST_SUFFIX)]
    models += [m for m in cost.models if m not in models]
    if not models:
        raise OutcomesError(
            f"{source}: no '<model>{COST_SUFFIX}' columns, so no models; for a file without costs name each "
            "model with --cost MODEL=USD_PER_QUERY or --price MODEL=IN:OUT"
        )
    missing = [m for m in models if m not in columns]
    if missing:
        raise OutcomesError(f"{source}: no outcome column for model(s) {missing}")
    counter = _token_counter() if any(m in cost.per_token for m in models) else None
    task_column = next((c for c in TASK_COLUMNS if c in columns), None)
    tasks: list[str] = []
    prompts: list[str] = []
    splits: list[str] = []
    scores: list[list[float]] = []
    costs: list[list[float]] = []
    skipped = 0
    for line, row in rows:
        prompt = _prompt_text(row.get(PROMPT))
        if not prompt:
            raise OutcomesError(f"{source}: row {line}: column {PROMPT!r} is empty or not text")
        row_scores = [_score(row.get(m), source, line, m) for m in models]
        row_costs = [_cost(row, m, prompt, cost, counter, source, line) for m in models]
        if any(math.isnan(v) for v in (*row_scores, *row_costs)):
            skipped += 1
            continue
        split = row.get(SPLIT)
        prompts.append(prompt)
        splits.append(str(split) if split not in (None, "") else hash_split(prompt))
        scores.append(row_scores)
        costs.append(row_costs)
        if task_column is not None:
            tasks.append(str(row.get(task_column) or ""))
    if not prompts:
        raise OutcomesError(f"{source}: every row has an empty or NaN outcome or cost{_emptiest(rows, models)}")
    return Outcomes(
        prompts, splits, models, np.asarray(scores, dtype=np.float64), np.asarray(costs, dtype=np.float64), skipped,
        tasks,
    )  # fmt: skip


def _emptiest(rows: Sequence[tuple[int, Mapping[str, Any]]], models: list[str]) -> str:
    """`` (e.g. column 'x' is empty or NaN in every row)`` for the columns that are, else ``""``."""
    empty = [
        c for m in models for c in (m, m + COST_SUFFIX)
        if all(str(row.get(c, "")).strip().lower() in ("", "nan") for _, row in rows)
    ]  # fmt: skip
    return f" (empty or NaN in every row: {', '.join(map(repr, empty[:4]))})" if empty else ""


def _prompt_text(value: Any) -> str:
    """The prompt's text; a list of strings (RouterBench writes ``['...']`` literals) is joined by blank lines."""
    if isinstance(value, str) and value[:2] in ("['", '["') and value[-2:] in ("']", '"]'):
        try:
            value = ast.literal_eval(value)  # literals only: never runs code
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n\n".join(value)
    return value if isinstance(value, str) else ""


def _open_text(path: Path) -> TextIO:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _csv_rows(path: Path, text: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(1 << 27)
    reader = csv.DictReader(text)
    if not reader.fieldnames:
        raise OutcomesError(f"{path}: empty file (no header row)")
    for row in reader:
        if None in row:
            raise OutcomesError(f"{path}: row {reader.line_num}: more fields than the header has columns")
        yield reader.line_num, row


def _jsonl_rows(path: Path, text: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    import orjson

    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise OutcomesError(f"{path}: line {number}: not JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise OutcomesError(f"{path}: line {number}: not a JSON object")
        yield number, row


def _number(value: Any) -> float:
    """A float from a CSV/JSON cell; NaN when empty; ``ValueError`` when not a number."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return 1.0
        if low in _FALSE:
            return 0.0
        return float(low)
    raise ValueError(value)


def _score(value: Any, source: str, line: int, model: str) -> float:
    try:
        score = _number(value)
    except ValueError:
        raise OutcomesError(
            f"{source}: row {line}: column {model!r}: {value!r} is not an outcome "
            "(0/1, true/false or a score in [0, 1])"
        ) from None
    if not math.isnan(score) and not 0.0 <= score <= 1.0:
        raise OutcomesError(f"{source}: row {line}: column {model!r}: score {score} is outside [0, 1]")
    return score


def _cost(
    row: Mapping[str, Any],
    model: str,
    prompt: str,
    spec: CostSpec,
    counter: Any,
    source: str,
    line: int,
) -> float:
    column = model + COST_SUFFIX
    if column in row and row[column] not in (None, ""):
        try:
            value = _number(row[column])
        except ValueError:
            raise OutcomesError(f"{source}: row {line}: column {column!r}: {row[column]!r} is not a number") from None
        if math.isnan(value):
            return value  # a NaN cost (as pandas writes a missing one): the row is skipped like an empty one
        if not math.isfinite(value) or value < 0:
            raise OutcomesError(f"{source}: row {line}: column {column!r}: cost {value} is negative or not finite")
        return value
    if model in spec.per_query:
        return spec.per_query[model]
    if model in spec.per_token:
        price_in, price_out = spec.per_token[model]
        return float(counter(prompt) * price_in + spec.output_tokens * price_out) / 1e6
    return math.nan


def _token_counter() -> Any:
    from tokenomy.tokens.tiktoken_offline import seed_cache

    seed_cache()
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    return lambda text: len(encoding.encode(text, disallowed_special=()))
