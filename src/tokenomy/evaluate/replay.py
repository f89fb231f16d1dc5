"""``tokenomy replay``: re-run a task's logged requests on a cheaper candidate, and say what switching
would cost and save.

The logged requests are those the ledger kept prompts and answers for (``ledger.store_prompts``).
Each is sent to the candidate through the gateway (cache bypassed); the candidate's answer is scored
against the **logged answer** (``similarity`` by default, or ``judge:MODEL``), so the score is
*agreement with what production answered*, not correctness. Reported: agreement with its 95%
interval, the sample's cost as logged and on the candidate, and the monthly saving projected at the
task's volume in the ledger (requests in the window, scaled to 30 days). The outcomes file treats
each logged answer as correct (``1``) for the model that served it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tokenomy.config.models import GatewayConfig
from tokenomy.evaluate.command import EvalOptions, execute
from tokenomy.evaluate.dataset import EvalItem
from tokenomy.evaluate.ledger_source import LedgerSourceError, logged_requests, task_volume
from tokenomy.evaluate.outcomes_writer import COST_SUFFIX
from tokenomy.evaluate.results import CallResult
from tokenomy.evaluate.summary import bootstrap_ci

MONTH_S = 30 * 86400


async def run_replay(
    config: GatewayConfig, task: str, options: EvalOptions, *, since: float | None = None, sample: int | None = None
) -> dict[str, Any]:
    """Replay the task's logged requests on ``options.models[0]``; returns the report document."""
    logged = [r for r in logged_requests(config, task, since=since, sample=sample) if r.response]
    if not logged:
        raise LedgerSourceError(
            f"no logged answers for task {task!r}: the ledger keeps them only with ledger.store_prompts: true"
        )
    items = [
        EvalItem(
            r.request_id,
            task,
            r.messages,
            r.response,
            {},
            {
                "logged_model": r.served_model or r.requested_model,
                "logged_cost_usd": r.cost_usd,
                "logged_latency_ms": r.latency_ms,
            },
        )
        for r in logged
    ]
    candidate = options.models[0]
    volume, covered = task_volume(config, task, since)  # before the replay's own calls
    run = await execute(items, f"ledger:{task}", replace(options, params={"task": task}), None)
    results = {r.item: r for r in run.state.results.values()}
    scored = [(item, results[item.id]) for item in items if item.id in results and results[item.id].score is not None]
    failed = sum(1 for item in items if item.id in results and results[item.id].score is None)
    monthly = volume / covered * MONTH_S
    doc: dict[str, Any] = {
        "task": task,
        "candidate": candidate,
        "scorer": options.scorer,
        "n": len(scored),
        "errors": failed,
        "logged_models": dict(Counter(str(i.metadata["logged_model"]) for i in items)),
        "stopped": run.state.stopped,
        "out": str(options.out),
    }
    if scored:
        scores = [r.score or 0.0 for _, r in scored]
        low, high = bootstrap_ci(scores)
        logged_cost = sum(float(i.metadata["logged_cost_usd"]) for i, _ in scored)
        candidate_cost = sum(r.cost_usd for _, r in scored)
        per_logged, per_candidate = logged_cost / len(scored), candidate_cost / len(scored)
        doc.update(
            {
                "agreement": round(float(np.mean(scores)), 4),
                "ci_low": round(low, 4),
                "ci_high": round(high, 4),
                "sample_cost_logged_usd": round(logged_cost, 6),
                "sample_cost_candidate_usd": round(candidate_cost, 6),
                "monthly_requests": round(monthly),
                "projected_monthly_saving_usd": round((per_logged - per_candidate) * monthly, 2),
                "p50_latency_ms_logged": round(
                    float(np.median([float(i.metadata["logged_latency_ms"]) for i, _ in scored])), 1
                ),
                "p50_latency_ms_candidate": round(float(np.median([r.latency_ms for _, r in scored])), 1),
                "scorer_cost_usd": round(sum(r.scorer_cost_usd for _, r in scored), 6),
            }
        )
    write_replay_outcomes(options.out / "outcomes.csv", candidate, scored)
    return doc


def write_replay_outcomes(path: Path, candidate: str, scored: list[tuple[EvalItem, CallResult]]) -> None:
    """One row per replayed request: the logged model at 1 with its logged cost, the candidate's score and cost.

    Requests logged on different models fill different columns; the router's loader skips rows
    with an empty cell (and says how many).
    """
    logged_models = list(
        dict.fromkeys(str(i.metadata["logged_model"]) for i, _ in scored if i.metadata["logged_model"] != candidate)
    )
    models = [*logged_models, candidate]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sample_id", "eval_name", "prompt", *[c for m in models for c in (m, m + COST_SUFFIX)]])
        for item, result in scored:
            row: list[object] = [item.id, item.task, item.prompt_text()]
            for model in models:
                if model == candidate:
                    row += [result.score, f"{result.cost_usd:.10f}"]
                elif model == item.metadata["logged_model"]:
                    row += [1, f"{float(item.metadata['logged_cost_usd']):.10f}"]
                else:
                    row += ["", ""]
            writer.writerow(row)


def render_replay(doc: dict[str, Any]) -> str:
    """The replay report as text."""
    lines = [f"replay of task {doc['task']!r} on {doc['candidate']} ({doc['scorer']} against the logged answers)"]
    lines.append(
        f"  requests replayed: {doc['n']} ({doc['errors']} errors); logged on: "
        + ", ".join(f"{m} ({n})" for m, n in doc["logged_models"].items())
    )
    if "agreement" in doc:
        lines += [
            f"  agreement: {doc['agreement']:.3f} [95% CI {doc['ci_low']:.3f}, {doc['ci_high']:.3f}]",
            f"  cost of the sample: logged ${doc['sample_cost_logged_usd']:.4f}, "
            f"candidate ${doc['sample_cost_candidate_usd']:.4f}",
            f"  p50 latency: logged {doc['p50_latency_ms_logged']:.0f} ms, candidate "
            f"{doc['p50_latency_ms_candidate']:.0f} ms",
            f"  projected monthly saving at {doc['monthly_requests']:,} requests/month: "
            f"${doc['projected_monthly_saving_usd']:,.2f}",
        ]
    if doc.get("stopped") == "budget":
        lines.append("  stopped early at --budget-usd (--resume continues)")
    lines.append(f"  files in {doc['out']} (outcomes.csv trains the learned router)")
    return "\n".join(lines)
