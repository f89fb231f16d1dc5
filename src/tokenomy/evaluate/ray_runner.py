"""Scale-out: the items of a run sharded over a Ray cluster (``--ray ADDRESS`` or ``--ray auto``).

Each shard (every model and repeat of a share of the items) runs on a Ray worker exactly as a local
run does (asyncio, through a gateway, same scorer), and the driver appends each shard's results to
the run directory as the shard finishes, so ``--resume`` works the same. The gateway is the
``--gateway URL`` (it must be reachable from the workers) or, with ``--config``, one served in
process by each worker. ``--concurrency`` and ``--budget-usd`` are split over the shards in
proportion to their calls. ``auto`` joins the Ray cluster running on this machine, or starts a
local one; anything else is the address of a cluster to join.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from tokenomy.evaluate.results import CallResult, RunDir
from tokenomy.evaluate.runner import Progress, RunState, Unit

if TYPE_CHECKING:
    from tokenomy.evaluate.command import EvalOptions


class _Collect(RunDir):
    """A worker's results kept in memory (the driver writes them)."""

    def __init__(self) -> None:
        super().__init__(".")
        self.results: list[CallResult] = []

    def append(self, result: CallResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        """Nothing to close."""


def _shard(options: EvalOptions, units: list[Unit]) -> tuple[list[dict[str, Any]], list[str], int, str | None]:
    """Run on a Ray worker: one shard, as a local run does it."""
    from tokenomy.evaluate.command import run_units

    sink = _Collect()
    state, unpriced, retries = asyncio.run(run_units(options, units, {}, sink, None))
    return [asdict(r) for r in sink.results], unpriced, retries, state.stopped


def run_on_ray(
    options: EvalOptions,
    units: Sequence[Unit],
    done: dict[tuple[str, str, int], CallResult],
    rundir: RunDir,
    tick: Progress | None,
) -> tuple[RunState, list[str], int]:
    """Run the units not in ``done`` over Ray (blocking; call from a thread)."""
    try:
        import ray
    except ImportError:
        from tokenomy.evaluate.command import EvalError

        raise EvalError("--ray needs Ray: pip install 'tokenomy[ray]'") from None
    if not ray.is_initialized():
        if options.ray == "auto":
            try:
                ray.init(address="auto", logging_level=logging.ERROR)
            except ConnectionError:
                ray.init(include_dashboard=False, logging_level=logging.ERROR)
        else:
            ray.init(address=options.ray, logging_level=logging.ERROR)
    todo = [u for u in units if (u.item.id, u.model, u.repeat) not in done]
    item_ids = list(dict.fromkeys(u.item.id for u in todo))
    cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
    count = max(1, min(len(item_ids), int(cpus)))
    shard_of = {item: i % count for i, item in enumerate(item_ids)}
    shards: list[list[Unit]] = [[] for _ in range(count)]
    for unit in todo:
        shards[shard_of[unit.item.id]].append(unit)
    remote = ray.remote(num_cpus=1)(_shard)
    pending = []
    for shard in shards:
        if not shard:
            continue
        share = len(shard) / max(1, len(todo))
        budget = None if options.budget_usd is None else options.budget_usd * share
        shard_options = replace(
            options, concurrency=max(1, round(options.concurrency * share)), budget_usd=budget, ray=None, progress=False
        )
        pending.append(remote.remote(shard_options, shard))
    state = RunState(dict(done), spent_usd=sum(r.cost_usd + r.scorer_cost_usd for r in done.values()))
    unpriced: set[str] = set()
    retries = 0
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            rows, missing, retried, stopped = ray.get(ready[0])
            for row in rows:
                result = CallResult(**row)
                rundir.append(result)
                state.results[result.key] = result
                state.spent_usd += result.cost_usd + result.scorer_cost_usd
                state.made += 1
            unpriced.update(missing)
            retries += retried
            state.stopped = state.stopped or stopped
            if tick is not None:
                tick(len(state.results), len(units), state.spent_usd)
    except ray.exceptions.RayTaskError as exc:
        from tokenomy.evaluate.command import EvalError

        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
        raise EvalError(str(cause)) from None
    finally:
        rundir.close()
    return state, sorted(unpriced), retries
