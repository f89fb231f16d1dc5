"""Prometheus metrics of the gateway.

One registry per process, exposed at ``GET /metrics``. Label values are bounded: models and
deployments come from the config, statuses from a fixed set. Under ``serve --workers`` counters and
histograms are summed over every process; gauges show one series per live process (a ``pid``
label, multiprocess mode ``liveall``), and a replaced worker's series go with it.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # a process of `serve --workers`
PUBLISH_S = 0.25

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "tokenomy_requests",
    "Requests answered, by endpoint, requested model, serving provider, task and status class.",
    ["endpoint", "model", "provider", "task", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "tokenomy_request_duration_seconds",
    "Time from request arrival to the last byte of the response.",
    ["endpoint", "model", "task"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TTFT = Histogram(
    "tokenomy_time_to_first_token_seconds",
    "Time from request arrival to the first streamed token.",
    ["endpoint", "model", "task"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "tokenomy_tokens",
    "Tokens processed by direction: input, output, and the subsets cached_input and reasoning.",
    ["model", "provider", "task", "direction"],
    registry=REGISTRY,
)
COST = Counter(
    "tokenomy_cost_usd",
    "What requests cost, in USD, by served model, provider and task.",
    ["model", "provider", "task"],
    registry=REGISTRY,
)
BASELINE_COST = Counter(
    "tokenomy_baseline_cost_usd",
    "What requests would have cost with no lever applied (requested model, original prompt, no cache).",
    ["model", "task"],
    registry=REGISTRY,
)
SAVED = Counter(
    "tokenomy_saved_usd",
    "Baseline minus cost, split by the lever that saved it.",
    ["lever", "task"],
    registry=REGISTRY,
)
CACHE_OUTCOMES = Counter(
    "tokenomy_cache_outcomes",
    "Requests by cache outcome (hit-exact, hit-semantic, miss, coalesced, bypass, none).",
    ["outcome", "task"],
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "tokenomy_cache_lookups",
    "Cache lookups by tier (memory, store, semantic) and outcome (hit, miss, corrupt, error).",
    ["tier", "outcome"],
    registry=REGISTRY,
)
CACHE_LOOKUP_SECONDS = Histogram(
    "tokenomy_cache_lookup_seconds",
    "Time to look a request up in the cache, by the tier that answered (or miss).",
    ["tier"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    registry=REGISTRY,
)
CACHE_STORE_ERRORS = Counter(
    "tokenomy_cache_store_errors",
    "Level-2 cache store operations that failed (store down); the cache carries on without it.",
    ["store", "op"],
    registry=REGISTRY,
)
CACHE_STORE_UP = Gauge(
    "tokenomy_cache_store_up", "1 when the level-2 cache store answers.", registry=REGISTRY, multiprocess_mode="liveall"
)
CACHE_MEMORY_BYTES = Gauge(
    "tokenomy_cache_memory_bytes", "Bytes held by the in-process cache.", registry=REGISTRY, multiprocess_mode="liveall"
)
CACHE_SKIPPED = Counter(
    "tokenomy_cache_not_stored",
    "Answers not stored, by reason (too_large, no_store, incomplete, error).",
    ["reason"],
    registry=REGISTRY,
)
OPTIMIZE_FAILURES = Counter(
    "tokenomy_optimize_failures",
    "Optimize transforms that failed; the request went on unchanged by them.",
    ["transform"],
    registry=REGISTRY,
)
OPTIMIZE_TRUNCATED = Counter(
    "tokenomy_optimize_truncated",
    "Answers cut short (finish_reason length) by an output cap the optimize stage set, by task.",
    ["task"],
    registry=REGISTRY,
)
# semantic cache live precision (cache/semantic/live.py)
SEMANTIC_AUDITS = Counter(
    "tokenomy_semantic_audits",
    "Semantic hits also answered upstream in the background, by task and outcome (agree, false).",
    ["task", "outcome"],
    registry=REGISTRY,
)
SEMANTIC_FALSE_HIT_RATE = Gauge(
    "tokenomy_semantic_false_hit_rate",
    "Audited false-hit rate at the task's current threshold: estimate and 95 % bounds (low95, high95).",
    ["task", "bound"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
SEMANTIC_THRESHOLD_OFFSET = Gauge(
    "tokenomy_semantic_threshold_offset",
    "What the error budget adds to the semantic tier's acceptance threshold, by task.",
    ["task"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
SEMANTIC_IN_FLIGHT = Counter(
    "tokenomy_semantic_in_flight_waits",
    "Semantic lookups whose match was a question still on its way upstream, by result: served (its answer was "
    "served), missed (it was not stored: the request went upstream) or timeout.",
    ["result"],
    registry=REGISTRY,
)
SEMANTIC_SUSPENDED = Gauge(
    "tokenomy_semantic_suspended",
    "1 while a task's semantic hits are suspended by its error budget (its requests go upstream).",
    ["task"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
LEDGER_QUEUE = Gauge(
    "tokenomy_ledger_queue_depth", "Ledger records waiting in memory.", registry=REGISTRY, multiprocess_mode="liveall"
)
LEDGER_LAG = Gauge(
    "tokenomy_ledger_lag_seconds",
    "Age of the oldest record in the last batch written to the store.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
LEDGER_WRITTEN = Counter("tokenomy_ledger_records_written", "Records written to the ledger store.", registry=REGISTRY)
LEDGER_SPILLED = Counter(
    "tokenomy_ledger_records_spilled",
    "Records written to the local spool file (queue full or store down); replayed later.",
    ["reason"],
    registry=REGISTRY,
)
LEDGER_REPLAYED = Counter(
    "tokenomy_ledger_records_replayed", "Spooled records written to the store after all.", registry=REGISTRY
)
LEDGER_LOST = Counter(
    "tokenomy_ledger_records_lost",
    "Records that could be neither stored nor spooled (should stay 0; see logs).",
    registry=REGISTRY,
)
LEDGER_STORE_UP = Gauge(
    "tokenomy_ledger_store_up",
    "1 when the ledger store accepts writes.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
LEDGER_WRITER_RESTARTS = Counter(
    "tokenomy_ledger_writer_restarts",
    "Times the ledger writer process died and was started again (records spool meanwhile).",
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "tokenomy_upstream_errors",
    "Failed upstream calls, by deployment and error type.",
    ["deployment", "type"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "tokenomy_in_flight_requests",
    "Requests in progress at the gateway.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
CONNECTIONS = Counter(
    "tokenomy_connections_accepted",
    "Client connections the server accepted (refused ones included): many per request means clients "
    "are not reusing connections.",
    registry=REGISTRY,
)
SHED = Counter("tokenomy_shed_requests", "Requests refused with 503 because the gateway was full.", registry=REGISTRY)
EDGE_REFUSALS = Counter(
    "tokenomy_edge_refusals",
    "Requests refused at the edge before the pipeline, by reason (every one is counted).",
    ["reason"],
    registry=REGISTRY,
)
EDGE_ROWS_SKIPPED = Counter(
    "tokenomy_edge_rows_skipped",
    "Refused requests that got no ledger row of their own (over server.edge_rows_per_s), by reason.",
    ["reason"],
    registry=REGISTRY,
)
PENDING = Gauge(
    "tokenomy_pending_requests",
    "Requests whose body is still arriving (they hold no in-flight slot).",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
QUEUE_DELAY = Gauge(
    "tokenomy_queue_delay_seconds",
    "Smallest wait, over the last window, between a request head arriving and the gateway starting on it.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
IN_FLIGHT_LIMIT = Gauge(
    "tokenomy_in_flight_limit",
    "Model calls allowed in progress now (adaptive: lowered while the gateway's own queueing is late).",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
IN_PROGRESS_SECONDS = Gauge(
    "tokenomy_in_progress_seconds",
    "Model calls in progress integrated over time since start (its rise over an interval, divided by the "
    "interval, is the mean number in progress; divided by the calls answered meanwhile, their mean time in progress).",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
ANSWERED = Gauge(
    "tokenomy_model_calls_answered",
    "Model calls answered since start, as the in-progress limit counts them.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
SLOT_WAITS_SERVED = Gauge(
    "tokenomy_slot_waits_served",
    "Model calls that waited for an in-progress slot (server.shed_wait_ms) and got one, since start.",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
LOOP_LAG = Gauge(
    "tokenomy_event_loop_lag_seconds",
    "Smoothed lateness of the event loop (load shedding signal).",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
MODEL_LOAD = Gauge(
    "tokenomy_model_load_seconds",
    "Cold-start time of an embedded model (load plus warm-up).",
    ["model"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
QUEUE_DEPTH = Gauge(
    "tokenomy_local_queue_depth",
    "Requests waiting for an embedded model.",
    ["model"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
QUEUE_WAIT = Histogram(
    "tokenomy_local_queue_wait_seconds",
    "Time a request waited for an embedded model before it started.",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "tokenomy_local_batch_size",
    "Inputs per batch run by the embedding micro-batcher.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)


def record_model_load(model: str, seconds: float) -> None:
    """Expose an embedded model's cold-start time."""
    MODEL_LOAD.labels(model).set(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type.

    Under ``serve --workers`` (``PROMETHEUS_MULTIPROC_DIR`` set) the values of every process are
    summed from their files, so any worker shows the whole gateway; the route-attempt counters,
    kept as plain integers, and the gauges read at scrape time (:func:`read_at_scrape`) reach those
    files every ``PUBLISH_S`` (:func:`publish_sampled`), and this worker's own just before it renders.
    """
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        _publish()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_readings: dict[str, tuple[Gauge, Callable[[], float]]] = {}


def read_at_scrape(gauge: Gauge, read: Callable[[], float]) -> None:
    """Show ``read()`` as ``gauge``'s value (replacing an earlier reader), read off the request path.

    In one process that is ``set_function``: called when ``/metrics`` is scraped. Under ``serve
    --workers`` the collector that sums the workers' files never calls a function (a gauge set only
    by one read 0 on every worker), so the value is written to this process's file with the
    route-attempt counts (:func:`publish_sampled`): every ``PUBLISH_S``, and just before this worker
    renders. The sum over the workers' series is then the gateway's (another worker's at most
    ``PUBLISH_S`` old)."""
    if MULTIPROCESS:
        _readings[gauge._name] = (gauge, read)
    else:
        gauge.set_function(read)


def _publish() -> None:
    ROUTE_ATTEMPTS.publish()
    for gauge, read in list(_readings.values()):
        gauge.set(read())


async def publish_sampled() -> None:
    """Under ``serve --workers``: hand the route-attempt counts and the gauges read at scrape time to
    the multiprocess files every ``PUBLISH_S`` until cancelled (then once more), so ``/metrics`` on
    any worker sums every worker's."""
    try:
        while True:
            await asyncio.sleep(PUBLISH_S)
            _publish()
    finally:
        _publish()


_children: dict[tuple[str, ...], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """Cached ``metric.labels(*labels)``: the lookup is the costly part of an observation."""
    key = (metric._name, *labels)
    found = _children.get(key)
    if found is None:
        found = _children.setdefault(key, metric.labels(*labels))
    return found


# -- routing: balancing, health, limits, retries and fallbacks (docs/routing.md) ---------------------------
class AttemptSource(Protocol):
    """Something holding attempt counts as plain integers (the routing pools)."""

    def attempt_counts(self) -> Iterable[tuple[str, str, int]]:
        """``(deployment, outcome, count)`` triples."""


class SampledCounter(Collector):
    """A counter kept as plain ints on the request path and summed at scrape time (no lock per increment)."""

    _labelnames = ("deployment", "outcome")

    def __init__(self, name: str, documentation: str) -> None:
        self._name, self._doc = name, documentation
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()
        self._counter: Counter | None = None
        self._published: dict[tuple[str, str], int] = {}

    def attach(self, source: AttemptSource) -> None:
        """Include ``source``'s counts while it lives."""
        self._sources.add(source)

    def totals(self) -> dict[tuple[str, str], int]:
        """``(deployment, outcome) -> count`` over every live source."""
        totals: dict[tuple[str, str], int] = {}
        for source in list(self._sources):
            for deployment, outcome, count in source.attempt_counts():
                totals[deployment, outcome] = totals.get((deployment, outcome), 0) + count
        return totals

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc, labels=list(self._labelnames))
        for (deployment, outcome), count in sorted(self.totals().items()):
            family.add_metric([deployment, outcome], count)
        yield family

    def publish(self) -> None:
        """Multiprocess mode: add what was counted since the last call to this process's metric file."""
        if self._counter is None:  # a real counter only here: its file is what every worker sums
            self._counter = Counter(self._name, self._doc, list(self._labelnames), registry=None)
        for key, count in self.totals().items():
            last = self._published.get(key)
            if last is None or count > last:  # (a source that went away lowers the totals: nothing to take back)
                self._counter.labels(*key).inc(count - (last or 0))  # a new series shows from 0, as in one process
                self._published[key] = count


ROUTE_ATTEMPTS = SampledCounter(
    "tokenomy_route_attempts",
    "Upstream attempts by deployment and outcome (ok, or the error code: upstream_error, upstream_timeout...).",
)
REGISTRY.register(ROUTE_ATTEMPTS)
CIRCUIT_STATE = Gauge(
    "tokenomy_circuit_state",
    "Circuit breaker of each deployment: 0 closed, 1 open, 2 half-open.",
    ["deployment"],
    registry=REGISTRY,
    multiprocess_mode="liveall",
)
RATE_LIMIT_WAITS = Counter(
    "tokenomy_rate_limit_waits",
    "Requests that queued briefly because every deployment of a model was at its RPM/TPM limit or cooling.",
    ["model"],
    registry=REGISTRY,
)

# -- keys and budgets (docs/keys-and-budgets.md) -------------------------------------------------------------
BUDGET_DOWNGRADES = Counter(
    "tokenomy_budget_downgrades",
    "Requests switched to a cheaper model because a soft budget was reached, by requested and served model.",
    ["model", "downgraded_to"],
    registry=REGISTRY,
)
BUDGET_REJECTIONS = Counter(
    "tokenomy_budget_rejections",
    "Requests refused with 429 budget_exceeded, by budget scope (key, team, task) and period (day, month).",
    ["scope", "period"],
    registry=REGISTRY,
)
