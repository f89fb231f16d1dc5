"""A generic dynamic micro-batcher in front of a batch function.

Concurrent :meth:`MicroBatcher.submit` calls are gathered into one batch until ``max_batch_size``
items are waiting or ``max_wait_ms`` have passed since the oldest waiting item arrived. The batch
runs as ONE call of ``run_batch`` in a worker thread (never on the event loop), and its results
are split back, in order, to each submitter. At most ``concurrency`` batches run at once, each on
its own thread (``run_batch`` must then be thread-safe): while they run, the next one fills up, so
the batch size adapts to the load by itself. ``max_wait_ms`` is an upper bound: a lone item right
after a single-item batch (no concurrency in sight) is run at once.

- A submission with more items than ``max_batch_size`` is split across consecutive batches.
- At most ``max_queue`` items wait; beyond that ``submit`` raises ``overloaded()`` (503). A
  submission larger than ``max_queue`` is still admitted when nothing is waiting, so a big but
  legal request is never refused forever.
- An exception raised by ``run_batch`` reaches every submitter with an item in that batch.
- A cancelled submitter's waiting items are dropped; the other submitters are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar, cast

from tokenomy.errors import GatewayError, overloaded
from tokenomy.telemetry.metrics import BATCH_SIZE, QUEUE_DEPTH

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("tokenomy.local")


@dataclass(slots=True, eq=False)
class _Submission(Generic[R]):
    """One ``submit`` call: its future and the result slots its items fill."""

    future: asyncio.Future[list[R]]
    results: list[R | None]
    remaining: int


@dataclass(slots=True, eq=False)
class _Entry(Generic[T, R]):
    """One waiting item and where its result goes."""

    submission: _Submission[R]
    index: int
    item: T
    arrived: float = field(default=0.0)


class MicroBatcher(Generic[T, R]):
    """Gather concurrent submissions into batches for ``run_batch`` (see the module docstring)."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], list[R]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        name: str,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue
        self.name = name
        self.concurrency = concurrency
        self._pending: deque[_Entry[T, R]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._batch_seconds = 0.01  # running mean of one batch's duration, for Retry-After
        self.batches_run = 0
        self._last_batch = 0
        self._depth = QUEUE_DEPTH.labels(name)
        self._sizes = BATCH_SIZE.labels(name)

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch (not counting the batch that is running)."""
        return len(self._pending)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Run ``items`` through ``run_batch`` (batched with others) and return their results in order."""
        if self._closed:
            raise GatewayError(503, f"{self.name} is shutting down.", "server_overloaded", code="overloaded")
        if not items:
            return []
        waiting = len(self._pending)
        if waiting and waiting + len(items) > self.max_queue:
            batches_ahead = (waiting + self.max_batch_size - 1) // self.max_batch_size + 1
            raise overloaded(
                f"The {self.name} queue is full ({waiting} items waiting); retry shortly.",
                batches_ahead * self._batch_seconds / self.concurrency,
            )
        loop = asyncio.get_running_loop()
        self._ensure_started(loop)
        submission: _Submission[R] = _Submission(loop.create_future(), [None] * len(items), len(items))
        now = loop.time()
        self._pending.extend(_Entry(submission, i, item, now) for i, item in enumerate(items))
        self._depth.set(len(self._pending))
        assert self._wakeup is not None and self._full is not None
        self._wakeup.set()
        if len(self._pending) >= self.max_batch_size:
            self._full.set()
        try:
            return await asyncio.shield(submission.future)
        except asyncio.CancelledError:
            if not submission.future.done():
                submission.future.cancel()
            self._drop(submission)
            raise

    async def close(self) -> None:
        """Stop the batching task, fail waiting submissions with 503 and release the worker thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for running in list(self._running):
            running.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._fail_pending(GatewayError(503, f"{self.name} shut down.", "server_overloaded", code="overloaded"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"batch-{self.name}")
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._task = loop.create_task(self._dispatch(), name=f"batcher:{self.name}")

    def _drop(self, submission: _Submission[R]) -> None:
        """Forget the waiting items of a cancelled submission."""
        if any(entry.submission is submission for entry in self._pending):
            self._pending = deque(entry for entry in self._pending if entry.submission is not submission)
            self._depth.set(len(self._pending))

    def _fail_pending(self, exc: BaseException) -> None:
        for entry in self._pending:
            if not entry.submission.future.done():
                entry.submission.future.set_exception(exc)
        self._pending.clear()
        self._depth.set(0)

    async def _dispatch(self) -> None:
        """The batching loop: wait for items and a free slot, fill a batch, start it off the loop."""
        assert self._wakeup is not None and self._full is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        slots = self._slots
        try:
            while True:
                if not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await slots.acquire()  # items pile up while every slot runs a batch
                await self._fill(loop)
                batch = self._take()
                if not batch:
                    slots.release()
                    continue
                task = loop.create_task(self._run(loop, batch), name=f"batch:{self.name}")
                self._running.add(task)
                task.add_done_callback(partial(self._finished, slots))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # pragma: no cover - a bug here must not leave submitters hanging
            log.exception("micro-batcher %s failed", self.name)
            self._fail_pending(exc)
            raise

    def _finished(self, slots: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        slots.release()

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until a batch is full or the oldest item has waited ``max_wait``.

        When the previous batch held a single item there is no concurrency to wait for, so a lone
        caller is not taxed ``max_wait`` on every request; as soon as items pile up behind a
        running batch, batches grow and the wait applies again.
        """
        assert self._full is not None
        if self._last_batch <= 1 and len(self._pending) == 1:
            return
        deadline = self._pending[0].arrived + self.max_wait
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._full.clear()
            try:
                await asyncio.wait_for(self._full.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Entry[T, R]]:
        """Pop up to ``max_batch_size`` live entries (cancelled submissions are skipped)."""
        batch: list[_Entry[T, R]] = []
        while self._pending and len(batch) < self.max_batch_size:
            entry = self._pending.popleft()
            if not entry.submission.future.done():
                batch.append(entry)
        self._depth.set(len(self._pending))
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry[T, R]]) -> None:
        """Run one batch in the worker thread and deliver its results or its error."""
        assert self._executor is not None
        self._sizes.observe(len(batch))
        self._last_batch = len(batch)
        items = [entry.item for entry in batch]
        started = loop.time()
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
        except asyncio.CancelledError:
            stopped = GatewayError(503, f"{self.name} shut down.", "server_overloaded", code="overloaded")
            for entry in batch:
                if not entry.submission.future.done():
                    entry.submission.future.set_exception(stopped)
            raise
        except Exception as exc:
            for entry in batch:
                if not entry.submission.future.done():
                    entry.submission.future.set_exception(exc)
            return
        finally:
            self.batches_run += 1
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (loop.time() - started)
        for entry, result in zip(batch, results, strict=True):
            submission = entry.submission
            if submission.future.done():
                continue
            submission.results[entry.index] = result
            submission.remaining -= 1
            if submission.remaining == 0:
                submission.future.set_result(cast("list[R]", submission.results))
