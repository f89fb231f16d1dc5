"""A short first-in, first-out wait for an in-progress slot, bounded by a deadline
(``server.shed_wait_ms``).

Refusing at once every request that finds the in-progress limit reached wastes the core's work
on bursts: an open-loop client's arrivals bunch up, and a slot freed a millisecond later finds no
one waiting, so the core idles while the client counts 503s (goodput at 1x saturation was 84% of
saturation). A request that finds no slot instead waits, in arrival order, for up to
``wait_s``; as each model call in progress is answered, the longest-waiting request takes its
slot. One that cannot get a slot within ``wait_s`` is shed (503 and ``Retry-After``, counted as
other sheds are) -- CoDel's rule that a queue may absorb a burst but must not stand: no request
waits longer than the deadline, whatever the load, and at most ``max_waiting`` wait at once
(beyond that a request is shed at once, as it would have been without the wait).

What waits is a connection, not a request object: the server protocol parks the bytes it has
read, unparsed, and stops reading the connection (``tokenomy.server.protocol``), so a waiting
request costs one queue entry, and one shed after its wait costs the same pre-built answer as an
immediate shed. The queue is generic over what waits; its owner says how to admit, shed and
recognise a waiter whose connection is gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

W = TypeVar("W")


class SlotQueue(Generic[W]):
    """Waiters for an in-progress slot, oldest first, each with a deadline."""

    def __init__(
        self,
        wait_s: float,
        admit: Callable[[W], None],
        shed: Callable[[W], None],
        gone: Callable[[W], bool],
    ) -> None:
        self.wait_s = wait_s
        self._admit, self._shed, self._gone = admit, shed, gone
        self._waiting: deque[tuple[float, W]] = deque()
        self._serving = False  # :meth:`serve` is running (an admitted waiter may re-enter)
        self.admitted = 0  # waiters that got a slot
        self.expired = 0  # waiters shed at their deadline

    def __len__(self) -> int:
        return len(self._waiting)

    def next_deadline(self) -> float | None:
        """When the longest-waiting request's wait runs out (None: no one waits)."""
        return self._waiting[0][0] if self._waiting else None

    def offer(self, waiter: W, now: float, max_waiting: int) -> bool:
        """Queue ``waiter`` until ``now + wait_s``; False (not queued) when ``max_waiting`` already wait."""
        if len(self._waiting) >= max_waiting:
            return False
        self._waiting.append((now + self.wait_s, waiter))
        return True

    def serve(self, now: float, room: Callable[[], bool]) -> None:
        """Shed the waiters past their deadline and admit the others, oldest first, while ``room()``
        says a slot is free (it is asked again after each admission: an admitted request may take
        its slot at once)."""
        if self._serving:
            return
        self._serving = True
        try:
            waiting = self._waiting
            while waiting:
                deadline, waiter = waiting[0]
                if self._gone(waiter):
                    waiting.popleft()
                elif deadline <= now:
                    waiting.popleft()
                    self.expired += 1
                    self._shed(waiter)
                elif room():
                    waiting.popleft()
                    self.admitted += 1
                    self._admit(waiter)
                else:
                    break
        finally:
            self._serving = False

    def expire(self, now: float) -> None:
        """Shed the waiters past their deadline (oldest first, so only the head need be looked at)."""
        self.serve(now, _no_room)


def _no_room() -> bool:
    return False
