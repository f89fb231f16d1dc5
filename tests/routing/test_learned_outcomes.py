"""The outcomes file: both data sets' layouts, JSONL, cost options, splits and clear errors for bad files."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.routing.learned_helpers import GPT4, MIXTRAL, MMLU, ROUTERBENCH, routerbench_rows, write_csv

from tokenomy.routing.learned.outcomes import CostSpec, OutcomesError, hash_split, load_outcomes


def test_routerbench_layout_is_read_directly() -> None:
    header, raw = routerbench_rows()
    outcomes = load_outcomes(ROUTERBENCH)
    models = [c.removesuffix("|total_cost") for c in header if c.endswith("|total_cost")]
    assert outcomes.models == models and len(models) == 11
    complete = [r for r in raw if all(r[m] != "" for m in models)]
    assert len(outcomes) == len(complete) and outcomes.skipped == len(raw) - len(complete)
    assert outcomes.splits == [r["split"] for r in complete]
    # RouterBench stores each prompt as a Python list literal: the text inside is what is read
    assert complete[0]["prompt"].startswith("['") and "\\n" in complete[0]["prompt"]
    assert outcomes.prompts[0] == "\n\n".join(ast.literal_eval(complete[0]["prompt"]))
    assert "\n" in outcomes.prompts[0]
    i = models.index(GPT4)
    assert outcomes.scores[:, i].tolist() == [float(r[GPT4]) for r in complete]
    assert outcomes.costs[:, i].tolist() == [float(r[GPT4 + "|total_cost"]) for r in complete]


def test_mmlu_layout_with_flat_and_per_token_costs() -> None:
    flat = load_outcomes(MMLU, CostSpec(per_query={GPT4: 0.01, MIXTRAL: 0.001}))
    assert flat.models == [GPT4, MIXTRAL] and len(flat) == 60
    assert set(np.unique(flat.scores)) <= {0.0, 1.0}
    assert np.all(flat.costs[:, 0] == 0.01)
    priced = load_outcomes(MMLU, CostSpec(per_token={GPT4: (10.0, 30.0), MIXTRAL: (0.6, 0.6)}, output_tokens=1))
    tokens = np.array([len(_cl100k().encode(p)) for p in priced.prompts])
    assert np.allclose(priced.costs[:, 0], (10.0 * tokens + 30.0) / 1e6)
    assert np.allclose(priced.costs[:, 1], (0.6 * tokens + 0.6) / 1e6)
    # rows without a split column get a deterministic hash split (~20% test)
    assert priced.splits == [hash_split(p) for p in priced.prompts]


def _cl100k() -> Any:
    from tokenomy.tokens.tiktoken_offline import seed_cache

    seed_cache()
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def test_jsonl_rows_match_the_csv(tmp_path: Path) -> None:
    outcomes = load_outcomes(ROUTERBENCH)
    path = tmp_path / "o.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, prompt in enumerate(outcomes.prompts[:30]):
            row: dict[str, object] = {"prompt": prompt, "split": outcomes.splits[i]}
            for j, m in enumerate(outcomes.models):
                row[m] = bool(outcomes.scores[i, j])
                row[m + "|total_cost"] = outcomes.costs[i, j]
            f.write(json.dumps(row) + "\n\n")
    again = load_outcomes(path)
    assert again.models == outcomes.models and again.prompts == outcomes.prompts[:30]
    assert np.array_equal(again.scores, outcomes.scores[:30]) and np.array_equal(again.costs, outcomes.costs[:30])


def test_prompt_lists_are_joined_and_odd_literals_kept(tmp_path: Path) -> None:
    rows = [["['a', 'b']", "1", "1"], ['["x\\ny"]', "1", "1"], ["['not closed", "1", "1"], ["['a' + 'b']", "1", "1"]]
    outcomes = load_outcomes(write_csv(tmp_path / "o.csv", ["prompt", "m", "m|total_cost"], rows))
    assert outcomes.prompts == ["a\n\nb", "x\ny", "['not closed", "['a' + 'b']"]
    path = tmp_path / "o.jsonl"
    path.write_text(json.dumps({"prompt": ["turn one", "turn two"], "m": 1, "m|total_cost": 1}) + "\n")
    assert load_outcomes(path).prompts == ["turn one\n\nturn two"]


def test_scores_in_between_and_boolean_words(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "o.csv",
        ["prompt", "a", "a|total_cost", "b", "b|total_cost"],
        [["p1", "0.25", "1", "True", "2"], ["p2", "false", "1", "1.0", "2"]],
    )
    outcomes = load_outcomes(path)
    assert outcomes.scores.tolist() == [[0.25, 1.0], [0.0, 1.0]]


def test_hash_split_is_stable_and_about_a_fifth() -> None:
    splits = [hash_split(f"prompt {i}") for i in range(2000)]
    assert splits == [hash_split(f"prompt {i}") for i in range(2000)]
    assert 0.17 < splits.count("test") / 2000 < 0.23


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["text", "a|total_cost", "a"], [["p", "1", "1"]], "no 'prompt' column"),
        (["prompt", "a"], [["p", "1"]], "no '<model>|total_cost' columns"),
        (["prompt", "a|total_cost"], [["p", "1"]], "no outcome column for model(s) ['a']"),
        (
            ["prompt", "a", "a|total_cost"],
            [["p", "1", "1"], ["q", "yes please", "1"]],
            "row 3: column 'a': 'yes please'",
        ),
        (["prompt", "a", "a|total_cost"], [["p", "1.5", "1"]], "row 2: column 'a': score 1.5 is outside [0, 1]"),
        (["prompt", "a", "a|total_cost"], [["p", "1", "-2"]], "row 2: column 'a|total_cost': cost -2.0 is negative"),
        (["prompt", "a", "a|total_cost"], [["p", "1", "cheap"]], "row 2: column 'a|total_cost': 'cheap' is not a num"),
        (["prompt", "a", "a|total_cost"], [["", "1", "1"]], "row 2: column 'prompt' is empty"),
        (["prompt", "a", "a|total_cost"], [["p", "1", "1", "extra"]], "row 2: more fields than the header"),
        (
            ["prompt", "a", "a|total_cost"],
            [["p", "", "1"]],
            "every row has an empty or NaN outcome or cost (empty or NaN in every row: 'a')",
        ),
        (
            ["prompt", "a", "a|total_cost", "b", "b|total_cost"],
            [["p", "1", "nan", "0", "1"], ["q", "1", "NaN", "1", "2"]],
            "empty or NaN in every row: 'a|total_cost'",
        ),
        (["prompt", "a", "a|total_cost"], [], "no rows"),
    ],
)
def test_malformed_csv_names_the_problem(
    tmp_path: Path, header: list[str], rows: list[list[object]], message: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(OutcomesError) as info:
        load_outcomes(path)
    assert message in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "p", "a": 1, "a|total_cost": 1}\n{"prompt": "q", "a": 1,\n', "line 2: not JSON"),
        ("[1, 2]\n", "line 1: not a JSON object"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(OutcomesError, match=message):
        load_outcomes(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(OutcomesError, match="no such outcomes file"):
        load_outcomes(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(OutcomesError, match="empty file"):
        load_outcomes(tmp_path / "empty.csv")
    (tmp_path / "fake.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(OutcomesError, match="cannot read it"):
        load_outcomes(tmp_path / "fake.csv.gz")


def test_split_selection_errors_list_the_splits() -> None:
    outcomes = load_outcomes(ROUTERBENCH)
    assert set(outcomes.split("test").splits) == {"test"}
    with pytest.raises(OutcomesError, match=r"no rows with split 'dev'; the file's splits: \['test', 'train'\]"):
        outcomes.split("dev")
    with pytest.raises(OutcomesError, match="unknown model"):
        outcomes.restrict(["gpt-5"])


def test_nan_costs_skip_their_rows_and_are_counted(tmp_path: Path) -> None:
    header = ["prompt", "a", "a|total_cost", "b", "b|total_cost"]
    rows = [["p", "1", "nan", "0", "1"], ["q", "1", "0.5", "1", "2"], ["r", "0", "0.5", "NaN", "2"]]
    outcomes = load_outcomes(write_csv(tmp_path / "nan.csv", header, rows))
    assert outcomes.prompts == ["q"] and outcomes.skipped == 2
    assert outcomes.costs.tolist() == [[0.5, 2.0]] and np.isfinite(outcomes.costs).all()
    rows[1][2] = "inf"
    with pytest.raises(OutcomesError, match=r"row 3: column 'a\|total_cost': cost inf is negative or not finite"):
        load_outcomes(write_csv(tmp_path / "inf.csv", header, rows))


def test_task_column_is_read_when_present(tmp_path: Path) -> None:
    header = ["prompt", "subject", "a", "a|total_cost", "b", "b|total_cost"]
    outcomes = load_outcomes(write_csv(tmp_path / "t.csv", header, [["p", "algebra", "1", "1", "0", "2"]]))
    assert outcomes.tasks == ["algebra"] and outcomes.select([True]).tasks == ["algebra"]
    assert (
        load_outcomes(write_csv(tmp_path / "n.csv", header[:1] + header[2:], [["p", "1", "1", "0", "2"]])).tasks == []
    )
