"""The Little's-law in-progress limit (``server.shed_control: little``), fed sequences of completions
and lateness, and compared with the other controllers on a model of a saturated core."""

from __future__ import annotations

from dataclasses import dataclass

from tokenomy.server.capacity import CapacityDetector
from tokenomy.server.overload import GradientDetector, LoopLagMonitor, OverloadDetector


def _little(target_s: float = 0.02, ceiling: int = 2048) -> tuple[LoopLagMonitor, CapacityDetector]:
    lag = LoopLagMonitor(limit_s=target_s, smoothing=1.0)  # no smoothing: each sample is the lag
    return lag, CapacityDetector(lag, target_s, min_in_flight=8, ceiling=ceiling, window_s=0.05)


def _window(detector: CapacityDetector, now: float, done: int, in_progress: float, active: int) -> None:
    """One 50 ms window in which ``done`` calls were answered with ``in_progress`` calls in progress on average."""
    detector.completed += done
    detector.busy_s += in_progress * 0.05
    detector.tick(now, active=active)


def test_bound_is_rate_times_quickest_in_progress_time_plus_target() -> None:
    lag, detector = _little()
    _window(detector, 1.0, 0, 0, 0)  # the first window only starts the clock
    for step in range(1, 5):  # on time: 150 calls per window (3,000/s), 15 in progress: 5 ms each
        _window(detector, 1.0 + step * 0.05, 150, 15, 15)
    assert round(detector.rate, 6) == 3000
    assert detector.quickest_s is not None and abs(detector.quickest_s - 0.005) < 1e-9
    assert detector.bound == 75, "3,000/s x (5 ms + 20 ms)"
    assert detector.limit == 2048, "on time: the bound does not bind"
    lag.observe(0.05)  # late, with 400 in progress
    _window(detector, 1.25, 150, 400, 400)
    assert detector.limit == 200, "late: toward the bound, by at most half in one window"
    assert detector.bound == 75, "a late window's slow calls do not raise the in-progress time estimate"
    lag.observe(0.05)
    _window(detector, 1.3, 150, 200, 200)
    assert detector.limit == 100
    _window(detector, 1.35, 150, 100, 100)
    assert detector.limit == 75, "down to the bound, not by a fixed factor"
    _window(detector, 1.4, 150, 75, 75)
    assert detector.limit == 75, "still late at the bound: no lower (the core would idle)"


def test_probing_stays_within_headroom_while_recently_late_then_returns_to_the_ceiling() -> None:
    lag, detector = _little(ceiling=1000)
    _window(detector, 1.0, 0, 0, 0)
    for step in range(1, 5):
        _window(detector, 1.0 + step * 0.05, 150, 15, 15)
    lag.observe(0.05)
    _window(detector, 1.25, 150, 100, 100)
    assert detector.limit == 75
    lag.observe(0.0)
    now = 1.3
    for _ in range(20):  # 1 s on time with every slot in use
        _window(detector, now, 150, detector.limit, detector.limit)
        now += 0.05
    assert detector.limit == 112, "probing by sqrt(limit), but no further than 1.5x the bound while recently late"
    for _ in range(30):  # 1.5 s more: the overload is 2 s behind; probing goes on
        _window(detector, now, 150, detector.limit, detector.limit)
        now += 0.05
    assert detector.limit > 112
    for _ in range(40):  # then nothing in progress: back to the ceiling
        _window(detector, now, 0, 0, 0)
        now += 0.05
    assert detector.limit == 1000


def test_before_any_estimate_it_backs_off_and_few_calls_of_its_own_move_nothing() -> None:
    lag, detector = _little(ceiling=1000)
    lag.observe(0.5)  # the loop is late (a model loading, another process), 3 calls in progress
    for step in range(10):
        _window(detector, 1.0 + step * 0.05, 1, 3, 3)
    assert detector.limit == 1000
    _window(detector, 1.5, 1, 100, 100)  # late with 100 in progress, no in-progress time known yet
    assert detector.bound is None and detector.limit == 80, "0.8x the calls in progress, as 'backoff'"


# -- a model of one saturated core ----------------------------------------------------------------------


@dataclass
class Core:
    """One event loop, in 10 ms steps (the loop-lag monitor's), shaped as measured at 2x saturation:
    a call costs ``cpu_s`` of the core, and more with more calls in progress (``crowding``: +100%
    per 1,000 in progress; the measured rise was 1.4-1.7x at about ten times the calls); it also
    waits ``upstream_s`` off the core and crosses the loop ``crossings`` times, so once the core is
    saturated its time in progress is the upstream wait plus ``crossings`` loop turns, and a timer
    fires one turn late. Shedding costs ``shed_s`` a request. Offered more than the core answers,
    calls queue until every slot the limit allows is taken."""

    offered: float = 2 / 0.0003  # calls per second: 2x what the core answers with nothing else in progress
    cpu_s: float = 0.0003
    crowding: float = 1.0 / 1000
    upstream_s: float = 0.001
    crossings: int = 4
    shed_s: float = 0.000015

    def step(self, limit: int) -> tuple[float, float, float, float]:
        """Calls in progress, answered per second, CPU per call and the loop's lateness under ``limit``."""
        free = self.offered * (self.upstream_s + self.cpu_s)  # in progress if nothing queued
        cost = self.cpu_s * (1 + self.crowding * free)
        if self.offered * cost < 1.0 and free <= limit:  # the core keeps up
            return free, self.offered, cost, 0.0
        n = float(limit)
        cost = self.cpu_s * (1 + self.crowding * n)
        rate = n / (self.upstream_s + cost)
        for _ in range(3):  # what the sheds leave of the core
            rate = min(n / (self.upstream_s + cost), (1.0 - max(0.0, self.offered - rate) * self.shed_s) / cost)
        turn = max(0.0, (n / rate - self.upstream_s) / self.crossings)
        return n, rate, cost, turn

    def run(self, detector: OverloadDetector, lag: LoopLagMonitor, seconds: float) -> tuple[float, float, float]:
        """Mean calls in progress, answered per second and CPU per answer over the run's second half."""
        now, rows = 1.0, []
        for step in range(round(seconds / 0.01)):
            n, rate, cost, turn = self.step(detector.limit)
            lag.observe(turn)
            detector.completed += round(rate * 0.01)
            detector.busy_s += n * 0.01
            if step % 5 == 4:  # a 50 ms window
                detector.tick(now, active=round(n))
            if step >= seconds / 0.02:
                rows.append((n, rate, cost))
            now += 0.01
        return tuple(sum(row[i] for row in rows) / len(rows) for i in range(3))  # type: ignore[return-value]


def test_little_holds_fewer_calls_in_progress_and_answers_more_than_lateness_alone() -> None:
    """In the model, the lag-driven controllers hold the loop's lag near 20 ms, which with four
    loop crossings per call is about 80 ms in progress: hundreds of calls, each dearer. Little's
    law holds the in-progress *time* near the quickest plus 20 ms instead: fewer calls at once,
    cheaper each, more answered."""
    results = {}
    for name, cls in (("backoff", OverloadDetector), ("gradient", GradientDetector), ("little", CapacityDetector)):
        lag = LoopLagMonitor(limit_s=0.02, smoothing=0.3)
        detector = cls(lag, 0.02, min_in_flight=8, ceiling=2048)
        Core(offered=1000).run(detector, lag, 1.0)  # a second of light load first
        results[name] = Core().run(detector, lag, 10.0)
    (b_n, b_rate, b_cost), (g_n, g_rate, _), (l_n, l_rate, l_cost) = (
        results["backoff"],
        results["gradient"],
        results["little"],
    )
    assert l_n < 0.65 * min(b_n, g_n), results
    assert l_cost < b_cost, results
    assert l_rate > 1.05 * max(b_rate, g_rate), results
