"""Balancing strategies pick among usable deployments as documented; ties rotate."""

from __future__ import annotations

import math
import random
from collections import Counter

from tests.routing.route_helpers import Clock, config, dep, model

from tokenomy.routing.balancer import Weighted
from tokenomy.routing.limits import LocalLimiters
from tokenomy.routing.pool import Pool, build_plans


def pool(strategy: str, *deps: str) -> Pool:
    cfg = config(model("m", *deps, strategy=strategy))
    return build_plans(cfg, LocalLimiters(Clock())).get("m").pools[0]  # type: ignore[union-attr]


def picks(p: Pool, n: int, stream: bool = False) -> Counter[str]:
    return Counter(p.balancer.pick(p.slots, stream).label for _ in range(n))


def test_round_robin_takes_turns() -> None:
    p = pool("round-robin", dep("a"), dep("b"), dep("c"))
    order = [p.balancer.pick(p.slots, False).label for _ in range(6)]
    assert order[:3] == order[3:] and sorted(order[:3]) == ["a", "b", "c"]


def test_weighted_follows_weights_on_all_and_on_a_subset() -> None:
    p = pool("weighted", dep("a", weight=3), dep("b", weight=1), dep("c", weight=4))
    p.balancer = Weighted(p.slots, random.Random(7))
    counts = picks(p, 8000)
    assert abs(counts["a"] / 8000 - 3 / 8) < 0.03 and abs(counts["c"] / 8000 - 4 / 8) < 0.03
    subset = [p.slots[0], p.slots[1]]  # c unusable: a and b share 3:1
    sub = Counter(p.balancer.pick(subset, False).label for _ in range(4000))
    assert set(sub) == {"a", "b"} and abs(sub["a"] / 4000 - 0.75) < 0.03


def test_least_busy_prefers_fewest_in_flight_and_rotates_ties() -> None:
    p = pool("least-busy", dep("a"), dep("b"), dep("c"))
    p.slots[0].stats.in_flight = 2
    p.slots[2].stats.in_flight = 1
    assert picks(p, 10) == Counter({"b": 10})
    p.slots[0].stats.in_flight = p.slots[2].stats.in_flight = 0
    assert picks(p, 30) == Counter({"a": 10, "b": 10, "c": 10})


def test_lowest_latency_shares_with_unmeasured_then_picks_the_fastest_expected() -> None:
    p = pool("lowest-latency", dep("a"), dep("b"))
    a, b = p.slots
    a.stats.observe(0.200, False)
    assert picks(p, 4) == Counter({"a": 2, "b": 2})  # b, not measured yet, is assumed as fast as a
    b.stats.in_flight = 1  # but its load counts: a slow newcomer cannot take everything
    assert picks(p, 3) == Counter({"a": 3})
    b.stats.in_flight = 0
    b.stats.observe(0.100, False)
    assert picks(p, 5) == Counter({"b": 5})
    b.stats.in_flight = 2  # 0.1 x 3 > 0.2 x 1: the load makes b slower to answer than a
    assert picks(p, 5) == Counter({"a": 5})
    a.stats.observe(0.050, True)  # streams compare time to first token
    b.stats.in_flight = 0
    b.stats.observe(0.010, True)
    assert picks(p, 5, stream=True) == Counter({"b": 5})


def test_latency_average_moves_and_failures_look_slow() -> None:
    p = pool("lowest-latency", dep("a"))
    stats = p.slots[0].stats
    stats.observe(1.0, False)
    stats.observe(2.0, False)
    assert math.isclose(stats.latency or 0, 1.2)
    stats.penalize(0.001, False)  # a fast failure counts as twice the average
    assert stats.latency is not None and stats.latency > 1.2


def test_cheapest_picks_lowest_price_unknown_last_and_rotates_ties() -> None:
    price = "{{input_per_mtok: {0}, output_per_mtok: {0}}}"
    p = pool(
        "cheapest",
        dep("dear", pricing=price.format(5)),
        dep("cheap1", pricing=price.format(1)),
        dep("cheap2", pricing=price.format(1)),
        dep("unknown", model="no-such-model-anywhere"),
    )
    assert p.slots[3].price == math.inf
    assert picks(p, 10) == Counter({"cheap1": 5, "cheap2": 5})
    assert p.balancer.pick([p.slots[0], p.slots[3]], False).label == "dear"


def test_unhealthy_deployments_are_skipped_only_when_there_is_a_choice() -> None:
    p = pool("round-robin", dep("a"), dep("b"))
    clock = Clock()
    for _ in range(3):
        p.slots[0].health.failure(clock.now)
    assert [s.label for s in p.usable(clock.now, [], gated=True)] == ["b"]
    assert len(p.usable(clock.now, [], gated=False)) == 2
    clock.now += 11  # past the cool-down: a probe may go
    assert len(p.usable(clock.now, [], gated=True)) == 2
    assert p.usable(clock.now, [p.slots[1]], gated=True) == [p.slots[0]]  # untried first
