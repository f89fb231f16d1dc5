"""``tokenomy router train`` / ``evaluate`` end to end through click's CliRunner (fake embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from tests.routing.learned_helpers import GPT4, MIXTRAL, MMLU, ROUTERBENCH, fake_embed, routerbench_rows, write_csv

from tokenomy.routing.cli import router
from tokenomy.routing.learned.features import cached_embed, minilm_embed


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(router, [str(a) for a in args], obj={"embed": fake_embed})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "rb.npz"
    result = run("train", "--outcomes", ROUTERBENCH, "--out", out, "--folds", "3")
    assert result.exit_code == 0, result.output
    assert "default position" in result.stdout and f"wrote {out}" in result.stdout
    for text in ("router families", "logistic", "knn", "mf", "cost-quality area", "2 shared preamble(s)"):
        assert text in result.stdout
    assert "skipped 1 rows with an empty or NaN outcome or cost" in result.stderr
    assert "1 training prompts (split 'train') also appear in other splits" in result.stderr
    return out


def test_evaluate_json_on_the_held_out_split(trained: Path) -> None:
    result = run("evaluate", "--outcomes", ROUTERBENCH, "--router", trained, "--split", "test", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"baselines", "oracle", "curve", "tasks", "default_knob"} <= set(data)
    _, raw = routerbench_rows()
    rows = [r for r in raw if r["split"] == "test" and r[GPT4] != ""]
    assert data["baselines"][GPT4]["cost_usd"] == pytest.approx(sum(float(r[GPT4 + "|total_cost"]) for r in rows))
    assert len(data["curve"]) == 101


def test_evaluate_table_and_plot(trained: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = run("evaluate", "--outcomes", ROUTERBENCH, "--router", trained, "--plot", plot)
    assert result.exit_code == 0, result.output
    for text in ("single models and the oracle", "oracle", GPT4, "router curve", "random mix acc.", "* the router's"):
        assert text in result.stdout
    for text in ("per task", "arc-challenge", "winogrande", "mbpp", "models chosen"):
        assert text in result.stdout
    assert "of the 239 evaluated prompts were among the router's training prompts" in result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mmlu_layout_with_prices(tmp_path: Path) -> None:
    out = tmp_path / "mmlu.npz"
    missing = run("train", "--outcomes", MMLU, "--out", out)
    assert missing.exit_code == 1 and "--cost MODEL=USD_PER_QUERY or --price MODEL=IN:OUT" in missing.output
    prices = ["--price", f"{GPT4}=10:30", "--price", f"{MIXTRAL}=0.6"]
    result = run("train", "--outcomes", MMLU, "--out", out, "--folds", "3", *prices)
    assert result.exit_code == 0, result.output
    result = run("evaluate", "--outcomes", MMLU, "--router", out, "--format", "json", "--split", "test", *prices)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["baselines"]) == {GPT4, MIXTRAL}
    wrong = run("evaluate", "--outcomes", ROUTERBENCH, "--router", out)
    assert wrong.exit_code == 1 and "which the outcomes file has no columns for" in wrong.output


def test_bad_input_gives_clear_errors(trained: Path, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", ["prompt", "a", "a|total_cost"], [["p", "maybe", "1"]])
    result = run("train", "--outcomes", bad, "--out", tmp_path / "r.npz")
    assert result.exit_code == 1 and "row 2: column 'a': 'maybe' is not an outcome" in result.output
    result = run("evaluate", "--outcomes", ROUTERBENCH, "--router", tmp_path / "none.npz")
    assert result.exit_code == 1 and "no such router file" in result.output
    (tmp_path / "junk.npz").write_bytes(b"junk")
    result = run("evaluate", "--outcomes", ROUTERBENCH, "--router", tmp_path / "junk.npz")
    assert result.exit_code == 1 and "not a router file or corrupt" in result.output
    result = run("evaluate", "--outcomes", ROUTERBENCH, "--router", trained, "--split", "dev")
    assert result.exit_code == 1 and "no rows with split 'dev'" in result.output
    result = run("train", "--outcomes", MMLU, "--cost", "gpt-4=lots")
    assert result.exit_code == 2 and "'gpt-4=lots': 'lots' is not a number" in result.output
    result = run("train", "--outcomes", MMLU, "--price", "gpt-4")
    assert result.exit_code == 2 and "'gpt-4' is not MODEL=VALUE" in result.output


def test_real_minilm_embeddings_and_the_embedding_cache(tmp_path: Path) -> None:
    calls: list[int] = []
    real = minilm_embed()

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return real(texts)

    embed = cached_embed(counting, tmp_path / "emb.npz")
    first = embed(["What is the capital of France?", "def add(a, b): return a + b"])
    assert first.shape == (2, 384) and np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-4)
    again = embed(["def add(a, b): return a + b", "What is the capital of France?"])
    assert calls == [2] and np.allclose(again[::-1], first)


def test_family_and_max_cost_share_options(tmp_path: Path) -> None:
    out = tmp_path / "knn.npz"
    result = run("train", "--outcomes", ROUTERBENCH, "--out", out, "--folds", "3", "--family", "knn",
                 "--max-cost-share", "0.3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "knn *" in result.stdout and "chosen with --family" in result.stdout
    assert "the most accurate position whose cost stays within 30% of the best model's" in result.stdout
    result = run("train", "--outcomes", ROUTERBENCH, "--out", out, "--family", "winprob")
    assert result.exit_code == 1 and "winprob family routes between exactly two models" in result.output


def test_training_rows_that_cannot_train_a_router(tmp_path: Path) -> None:
    one = write_csv(tmp_path / "one.csv", ["prompt", "a", "a|total_cost"], [[f"p{i}", i % 2, 1] for i in range(30)])
    result = run("train", "--outcomes", one, "--out", tmp_path / "r.npz", "--split", "all")
    assert result.exit_code == 1 and "the outcomes name one model (a)" in result.output
    header = ["prompt", "a", "a|total_cost", "b", "b|total_cost"]
    same = write_csv(tmp_path / "same.csv", header, [[f"p{i}", 1, 1, 1, 2] for i in range(30)])
    result = run("train", "--outcomes", same, "--out", tmp_path / "r.npz", "--split", "all")
    assert result.exit_code == 1 and "every outcome in the 30 training rows is 1" in result.output
    assert not (tmp_path / "r.npz").exists()
