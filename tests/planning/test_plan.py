"""``tokenomy plan`` on a ledger with known traffic, a stated profile, and bad input."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from genai_prices import Usage, calc_price
from tests.reports.helpers import sqlite_config, write_ledger

from tokenomy.cli import main
from tokenomy.ledger.record import LedgerRecord
from tokenomy.planning import catalog

START = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
DAY = 86400.0
CATALOG = """# test catalog
gpu,memory_gb,on_demand_usd_per_hour,spot_usd_per_hour,cold_start_s,instance,source,date
t4x,16,1.25,0.5,90,test box,unit test row,2026-01-01
noprice,16,,,,test box,unit test row,2026-01-01
"""
PUBLISHED = """model,gpu,engine,output_tokens_per_s,ttft_p90_ms,tpot_p90_ms,workload,source,date
tiny-llm,t4x,testengine,400,,,fixed,unit test row,2026-01-01
"""


def _data(files: dict[str, Path], *, tiny: bool = False) -> list[str]:
    """The test catalog and published table (and the model they cover)."""
    out = ["--catalog", str(files["catalog"]), "--published", str(files["published"])]
    return [*out, "--self-host-model", "tiny-llm"] if tiny else out


def _plan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["plan", *args])
    return result.exit_code, result.output


def _json(*args: str) -> dict[str, Any]:
    code, out = _plan(*args, "--format", "json")
    assert code == 0, out
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("plan")
    (tmp / "gpus.csv").write_text(CATALOG)
    (tmp / "published.csv").write_text(PUBLISHED)
    records = []
    for i in range(300):  # 30 days, 10 a day; every 7th fails (not counted), tokens vary
        records.append(
            LedgerRecord(
                request_id=f"r{i}",
                ts=START + i * (30 * DAY / 300),
                task="chat" if i % 3 else "summarize",
                requested_model="fast",
                status=500 if i % 7 == 0 else 200,
                prompt_tokens=1000 + 37 * i,
                cached_tokens=(200 if i % 2 else 0),
                completion_tokens=100 + 11 * i,
            )
        )
    write_ledger(tmp / "ledger.db", records)
    config = sqlite_config(tmp, tmp / "ledger.db")
    return {
        "dir": tmp,
        "config": config,
        "catalog": tmp / "gpus.csv",
        "published": tmp / "published.csv",
        "records": tmp / "ledger.db",
    }


def _window() -> list[str]:
    return ["--since", "2025-06-01", "--until", "2025-06-30"]  # until is the end of that day: 30 days


def test_api_cost_is_tokens_times_prices(files: dict[str, Path]) -> None:
    doc = _json(
        "--config",
        str(files["config"]),
        *_window(),
        "--models",
        "gpt-4o-mini,gpt-4o",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
    )
    ok = [i for i in range(300) if i % 7]
    inp = sum(1000 + 37 * i for i in ok)
    cached = sum(200 for i in ok if i % 2)
    out = sum(100 + 11 * i for i in ok)
    t = doc["traffic"]
    assert (t["requests"], t["input_tokens"], t["cached_tokens"], t["output_tokens"]) == (len(ok), inp, cached, out)
    for model in ("gpt-4o-mini", "gpt-4o"):
        option = next(o for o in doc["options"] if o["name"] == f"API {model}")
        usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
        expected = float(calc_price(usage, model_ref=model, provider_id="openai").total_price)
        assert round(option["monthly_usd"], 2) == round(expected, 2)


def test_batch_share_gets_the_batch_discount(files: dict[str, Path]) -> None:
    args = (
        "--requests-per-day",
        "1000",
        "--input-tokens",
        "500",
        "--output-tokens",
        "100",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
    )
    full = _json(*args)["options"]
    half = _json(*args, "--batch-share", "0.5")["options"]
    api = {o["name"]: o["monthly_usd"] for o in full if o["kind"] == "api"}
    for o in half:
        if o["kind"] == "api":
            assert o["monthly_usd"] == pytest.approx(api[o["name"]] * 0.75)


def test_every_self_hosted_number_traces_to_its_inputs(files: dict[str, Path]) -> None:
    doc = _json(
        "--requests-per-day",
        "50000",
        "--input-tokens",
        "500",
        "--output-tokens",
        "300",
        "--peak-to-mean",
        "3",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
        "--headroom",
        "0.25",
    )
    own = [o for o in doc["options"] if o["kind"] == "self-hosted"]
    assert {o["inputs"]["price"] for o in own} == {"on-demand", "spot"}
    for o in own:
        i = o["inputs"]
        assert i["usd_per_gpu_hour"] == (1.25 if i["price"] == "on-demand" else 0.5)
        assert (i["capacity_output_tokens_per_s"], i["capacity_kind"]) == (400.0, "published")
        peak = 50000 * 30 * 300 / (730 * 3600) * 3
        assert i["peak_output_tokens_per_s"] == pytest.approx(peak)
        assert o["replicas"] == math.ceil(peak / (400 * 0.75)) + 1
        assert o["monthly_usd"] == pytest.approx(o["replicas"] * i["usd_per_gpu_hour"] * 730)


def test_recommendation_flips_at_the_break_even(files: dict[str, Path]) -> None:
    args = [
        "--requests-per-day",
        "2000",
        "--input-tokens",
        "800",
        "--output-tokens",
        "200",
        "--models",
        "gpt-4o",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
    ]
    doc = _json(*args)
    f = doc["break_even_factor"]
    assert doc["recommendation"] == "API gpt-4o" and f > 1
    below = _json(*args, "--growth", f"{f * 0.99}x")
    above = _json(*args, "--growth", f"{f * 1.01}x")
    assert below["recommendation"] == "API gpt-4o"
    assert above["recommendation"].startswith("tiny-llm on t4x")


def test_measured_profile_beats_the_published_figure_and_respects_the_slo(
    files: dict[str, Path], tmp_path: Path
) -> None:
    level = {
        "load": "concurrency=8",
        "requests": 10,
        "succeeded": 10,
        "errors": {},
        "request_throughput": 2.0,
        "output_token_throughput": 900.0,
        "input_token_throughput": 100.0,
        "ttft": {"p90": 300.0},
        "tpot": {"p90": 30.0},
    }
    profile = {
        "kind": "tokenomy-throughput-profile",
        "version": 1,
        "model": "tiny-llm",
        "gpu": "t4x",
        "gpus": 1,
        "engine": "vllm",
        "date": "2026-12-01",
        "levels": [level],
    }
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    args = [
        "--requests-per-day",
        "50000",
        "--input-tokens",
        "500",
        "--output-tokens",
        "300",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
        "--profiles",
        str(tmp_path),
    ]
    doc = _json(*args, "--slo", "ttft_ms=500,tpot_ms=50")
    own = next(o for o in doc["options"] if o["kind"] == "self-hosted")
    assert own["inputs"]["capacity_kind"] == "measured" and own["inputs"]["capacity_output_tokens_per_s"] == 900.0
    strict = _json(*args, "--slo", "ttft_ms=100")
    assert not [o for o in strict["options"] if o["kind"] == "self-hosted"]
    assert any("never met the SLO" in line for line in strict["assumptions"])
    code, out = _plan(*args, "--slo", "ttft_ms=100", "--models", "")
    assert code == 1 and "no option can meet the SLO" in out and "never met the SLO" in out


def test_html_report_has_the_plot_and_the_break_even(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "plan.html"
    code, text = _plan(
        "--requests-per-day",
        "2000",
        "--input-tokens",
        "800",
        "--output-tokens",
        "200",
        "--gpus",
        "t4x",
        *_data(files, tiny=True),
        "--format",
        "html",
        "--out",
        str(out),
    )
    assert code == 0, text
    page = out.read_text()
    assert "data:image/png;base64," in page and "Break-even" in page and "unit test row" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "noprice"], "GPU 'noprice' has no on-demand price: fill on_demand_usd_per_hour in"),
        (["--gpus", "z9"], "unknown GPU 'z9': the catalog has t4x, noprice; add a row to"),
        (["--models", "no-such-model-xyz"], "no price known for API model 'no-such-model-xyz' in genai-prices"),
        (["--growth", "lots"], "--growth 'lots': expected a factor"),
        (["--gpus", "t4x", "--output-tokens", "0"], "a stated profile needs --requests-per-day > 0"),
    ],
)
def test_bad_input_says_what_to_do(files: dict[str, Path], args: list[str], message: str) -> None:
    code, out = _plan(
        *_data(files),
        "--requests-per-day",
        "1000",
        "--input-tokens",
        "10",
        "--output-tokens",
        "10",
        *args,
    )
    assert code != 0 and message in " ".join(out.split()), out


def test_missing_profile_and_empty_window(files: dict[str, Path]) -> None:
    doc = _json(
        "--requests-per-day",
        "1000",
        "--input-tokens",
        "10",
        "--output-tokens",
        "10",
        *_data(files),
        "--gpus",
        "t4x",
        "--self-host-model",
        "llama-3-8b",
    )
    assert any("no throughput profile for llama-3-8b on t4x: run tokenomy bench" in line for line in doc["assumptions"])
    code, out = _plan("--config", str(files["config"]), "--since", "2024-01-01", "--until", "2024-01-31")
    assert code == 1 and "the ledger has no successful requests in the window: widen --since" in out


def test_shipped_catalogs_cite_every_row() -> None:
    for row in catalog.gpus().values():
        assert row.source and row.date and row.on_demand_usd_per_hour
    for pub in catalog.published():
        assert pub.source.startswith("https://") and pub.date and pub.output_tokens_per_s > 0
