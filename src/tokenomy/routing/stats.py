"""Live statistics per deployment: requests in flight, and EWMAs of latency and time to first token."""

from __future__ import annotations

ALPHA = 0.2  # weight of the newest sample in the moving averages


class DeploymentStats:
    """What the least-busy and lowest-latency strategies read; updated by the route stage."""

    __slots__ = ("in_flight", "latency", "ttft")

    def __init__(self) -> None:
        self.in_flight = 0
        self.latency: float | None = None  # seconds, whole non-streaming responses
        self.ttft: float | None = None  # seconds to the first chunk of streams

    def observe(self, seconds: float, stream: bool) -> None:
        """Fold in a successful attempt's latency (streams: its time to first chunk)."""
        if stream:
            old = self.ttft
            self.ttft = seconds if old is None else old + ALPHA * (seconds - old)
        else:
            old = self.latency
            self.latency = seconds if old is None else old + ALPHA * (seconds - old)

    def penalize(self, seconds: float, stream: bool) -> None:
        """Fold in a failed attempt: at least twice the current average, so failing fast looks slow."""
        current = self.ttft if stream else self.latency
        self.observe(max(seconds, 2.0 * current) if current is not None else seconds, stream)

    def average(self, stream: bool) -> float | None:
        """The average that applies (time to first token for streams, else latency), or the other one."""
        first, other = (self.ttft, self.latency) if stream else (self.latency, self.ttft)
        return first if first is not None else other

    def expected(self, stream: bool, prior: float) -> float:
        """Expected wait on this deployment now: average x (in flight + 1); ``prior`` stands in for an
        average not measured yet (so an unmeasured deployment gets traffic, but not all of it)."""
        average = self.average(stream)
        return (prior if average is None else average) * (self.in_flight + 1)
