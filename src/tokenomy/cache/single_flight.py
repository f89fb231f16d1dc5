"""Single-flight: identical requests in flight at the same time share one upstream call.

The first request (the leader) calls the upstream; later identical ones (followers) wait for
its answer. A streamed answer is recorded chunk by chunk so a follower receives the same stream
from its start. If the leader fails with an error, followers get the same error; if the leader
goes away (its client disconnected), followers retry on their own once. Followers never hang:
the leader always settles its flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tokenomy.errors import GatewayError
from tokenomy.pipeline.context import Completion


class LeaderGone(Exception):
    """The leader stopped without an answer or an error of its own (e.g. its client left)."""


class Flight:
    """One in-flight upstream call and everything followers need to share it."""

    def __init__(self) -> None:
        self.settled = asyncio.Event()  # the leader has a response (or failed)
        self.completion: Completion | None = None
        self.chunks: list[dict[str, Any]] = []
        self.streaming = False
        self.finished = False  # the stream ended normally
        self.error: BaseException | None = None
        self._changed = asyncio.Condition()
        self.followers = 0

    # -- the leader's side ---------------------------------------------------------------

    def resolve(self, completion: Completion) -> None:
        """The leader got a whole response."""
        self.completion = completion
        self.settled.set()

    def start_stream(self) -> None:
        """The leader got a stream; chunks follow."""
        self.streaming = True
        self.settled.set()

    async def push(self, chunk: dict[str, Any]) -> None:
        """One more chunk of the leader's stream."""
        self.chunks.append(chunk)
        async with self._changed:
            self._changed.notify_all()

    async def end(self, error: BaseException | None = None) -> None:
        """The leader is done: normally (``error`` None) or with an error."""
        if error is None:
            self.finished = True
        elif self.error is None:
            self.error = error
        self.settled.set()
        async with self._changed:
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        """The leader failed before it had a response."""
        self.error = error
        self.settled.set()

    # -- a follower's side ---------------------------------------------------------------

    async def wait(self) -> None:
        """Wait for the leader's response (raises its error, or :class:`LeaderGone`)."""
        await self.settled.wait()
        if self.completion is None and not self.streaming:
            raise self._shared_error()

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """The leader's stream from its first chunk."""
        sent = 0
        while True:
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self.finished:
                return
            if self.error is not None:
                raise self._shared_error()
            async with self._changed:
                if sent == len(self.chunks) and not self.finished and self.error is None:
                    await self._changed.wait()

    def _shared_error(self) -> BaseException:
        if isinstance(self.error, GatewayError):
            return self.error
        return LeaderGone(str(self.error) if self.error else "the leader went away")


class PrivateFlight(Flight):
    """A flight nobody follows (no-cache requests, or single-flight off): every leader call is a
    no-op, so a request that shares nothing allocates no event or condition."""

    def __init__(self) -> None:
        """Deliberately skips Flight's allocations."""

    def resolve(self, completion: Completion) -> None:
        """Nothing to share."""

    def start_stream(self) -> None:
        """Nothing to share."""

    async def push(self, chunk: dict[str, Any]) -> None:
        """Nothing to share."""

    async def end(self, error: BaseException | None = None) -> None:
        """Nothing to share."""

    def fail(self, error: BaseException) -> None:
        """Nothing to share."""


PRIVATE = PrivateFlight()
"""The one private flight (stateless)."""


class Flights:
    """The flights in progress, by cache key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def join(self, key: str) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether the caller leads it (True: a new flight)."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
            return flight, False
        flight = self._flights[key] = Flight()
        return flight, True

    def land(self, key: str, flight: Flight) -> None:
        """Remove a finished flight (later identical requests look in the cache instead)."""
        if self._flights.get(key) is flight:
            del self._flights[key]

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)
