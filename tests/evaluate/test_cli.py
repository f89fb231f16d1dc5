"""``tokenomy eval`` and ``tokenomy replay`` refuse bad input with a clear message and exit status 2."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tokenomy.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_unknown_scorer_is_named_with_the_known_ones(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi"}\n')
    code, out = run("eval", "--dataset", str(data), "--models", "a", "--scorer", "choise", "--gateway", "http://x")
    assert code == 2 and "unknown scorer 'choise'" in out and "did you mean 'choice'" in out and "judge" in out


def test_malformed_dataset_names_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi"}\n{"prompt": 3}\n')
    code, out = run("eval", "--dataset", str(data), "--models", "a", "--gateway", "http://x")
    assert code == 2 and "d.jsonl: line 2: 'prompt' must be a non-empty string" in out


def test_dataset_or_ledger_and_models(tmp_path: Path) -> None:
    code, out = run("eval", "--models", "a", "--gateway", "http://x")
    assert code == 2 and "--dataset FILE or --from-ledger" in out
    code, out = run("eval", "--dataset", "nope.jsonl", "--models", "a,a", "--gateway", "http://x")
    assert code == 2 and "a model is named twice" in out
    code, out = run("eval", "--dataset", str(tmp_path / "missing.jsonl"), "--models", "a", "--gateway", "http://x")
    assert code == 2 and "missing.jsonl: cannot be read" in out


def test_replay_without_a_ledger(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        f"ledger: {{path: '{tmp_path / 'none.db'}'}}\n"
        "models:\n  - {name: a, deployments: [{provider: local, model: smollm2-135m-instruct}]}\n"
    )
    code, out = run("replay", "--task", "t", "--candidate", "a", "--config", str(cfg))
    assert code == 2 and "no ledger at" in out
