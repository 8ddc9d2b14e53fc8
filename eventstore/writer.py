"""Group commit: one writer task turns many concurrent appends into few transactions.

Callers queue their append and wait. The writer takes whatever has queued (up
to a cap) and commits it as one batch, so under load fifty waiting appends cost
one fsync instead of fifty. Each append still gets its own result or error; a
conflict in one never fails its batch-mates (the planner judges each append
alone, in queue order).

Cancellation: a caller cancelled while waiting leaves its append queued; the
writer commits it whole or not at all, and a retry with the same event ids
returns the original positions. Closing drains the queue, then stops.

The queue is a deque of (append, future) pairs rather than a memory stream: a
hot path that runs once per append, where every microsecond shows. The store
runs on asyncio (aiosqlite requires it), so plain asyncio futures are the
cheapest way to hand each caller its outcome.

A backend that can commit from a thread (``commit_blocking``: SQLite) gets a
committing thread of its own: it takes what is queued, commits it, hands the
outcomes to the event loop in one callback and takes the next batch at once.
Committing from the loop, each batch's outcome waited behind every callback
the loop had queued (a busy server's requests) before the writer could take
the next batch: 17 ms a cycle for 6 ms of commit, the log idle the rest.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from .backend import Backend
from .envelope import AppendResult
from .errors import AppendError, StoreClosedError, StoreError
from .logs import get_logger
from .planner import PendingAppend

__all__ = ["GroupCommitWriter"]

log = get_logger("eventstore.writer")

_Outcome = AppendResult | list[AppendResult] | BaseException


class _Atomic(tuple[PendingAppend, ...]):
    """Several appends that must all be stored or none (committed in their own transaction)."""


_Ticket = tuple[PendingAppend | _Atomic, "asyncio.Future[Any]"]


class _BlockingCommit(Protocol):
    def __call__(
        self, appends: Sequence[PendingAppend], atomic: bool = False
    ) -> list[AppendResult | AppendError]: ...


class _BackgroundCheckpoints(Protocol):
    """A backend that checkpoints away from the commit path (SQLite's WAL)."""

    def start_background_checkpoints(self) -> None: ...
    def stop_background_checkpoints(self) -> None: ...
    def checkpoint_due(self) -> bool: ...
    def checkpoint_blocking(self) -> None: ...


def _settle(future: asyncio.Future[Any], outcome: _Outcome) -> None:
    if future.done():  # the caller was cancelled and went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class GroupCommitWriter:
    """The single writer task of a store handle; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_batch_events: int = 2000,
        on_commit: Callable[[int], None] = lambda position: None,
    ) -> None:
        self._backend = backend
        self._max_batch_events = max_batch_events
        self._on_commit = on_commit
        self._queue: deque[_Ticket] = deque()
        self._wakeup = anyio.Event()
        #: The backend's commit from a thread, when it has one (see the module docstring).
        self._commit_blocking: _BlockingCommit | None = getattr(backend, "commit_blocking", None)
        self._thread_wakeup = threading.Event()
        # Set by the committing thread before it sleeps: only then is it woken (a
        # threading.Event.set per append cost the loop a lock and a notify each).
        self._thread_idle = False
        self._thread_stop = False
        # Set from the committing thread when the backend wants a checkpoint.
        self._checkpoint_wanted = anyio.Event()
        self._closed = False
        self._running = False
        #: Counters for benchmarks and ``store describe``.
        self.batches = 0
        self.appends = 0

    async def submit(self, append: PendingAppend) -> AppendResult:
        """Queue ``append`` and wait for its outcome; raise its AppendError or StoreError."""
        if self._closed or not self._running:
            raise StoreClosedError("the store is closed")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append((append, future))
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._commit_blocking is None:
            self._wakeup.set()
        elif self._thread_idle:
            self._thread_wakeup.set()

    async def submit_each(
        self, appends: Sequence[PendingAppend]
    ) -> list[AppendResult | AppendError]:
        """Queue independent appends at once; each one's result, or its refusal, in order.

        One call and no task per append (a request storing 100 events queues 100
        appends here); they share group commits with everyone else's. A batch
        failure (StoreError) is raised. Cancelled while waiting, the appends not
        yet settled stay queued and are committed whole or not at all.
        """
        if self._closed or not self._running:
            raise StoreClosedError("the store is closed")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[AppendResult]] = []
        for append in appends:
            future: asyncio.Future[AppendResult] = loop.create_future()
            self._queue.append((append, future))
            futures.append(future)
        self._wake()
        outcomes: list[AppendResult | AppendError] = []
        try:
            for future in futures:
                try:
                    outcomes.append(await future)
                except AppendError as exc:
                    outcomes.append(exc)
        except BaseException:
            for future in futures:
                future.cancel()  # nobody will read them: _settle skips a done future
            raise
        return outcomes

    async def submit_atomic(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """Queue appends that are stored all together or not at all; raise the first error."""
        if self._closed or not self._running:
            raise StoreClosedError("the store is closed")
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        self._queue.append((_Atomic(appends), future))
        self._wake()
        return await future

    def close(self) -> None:
        """Refuse new appends; the writer drains what is queued, then returns."""
        self._closed = True
        self._wakeup.set()
        self._thread_wakeup.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer loop: runs until :meth:`close`, then drains the queue."""
        self._running = True
        task_status.started()
        if self._commit_blocking is not None:
            await self._run_thread(self._commit_blocking)
            return
        batch: list[_Ticket] | None = []
        try:
            while True:
                batch = await self._next_batch()
                if batch is None:
                    return
                await self._commit(batch)
                batch = []
        finally:
            self._running = False
            self._closed = True
            # Cancelled (the store's task group is going down): nobody may wait forever.
            error = StoreClosedError("the store closed before this append was committed")
            for _, future in batch or ():
                _settle(future, error)
            while self._queue:
                _settle(self._queue.popleft()[1], error)

    async def _run_thread(self, commit: _BlockingCommit) -> None:
        """Commit from a thread of our own until closed (and drained) or cancelled."""
        loop = asyncio.get_running_loop()
        try:
            async with anyio.create_task_group() as group:

                async def stop_thread_when_cancelled() -> None:
                    try:
                        await anyio.sleep_forever()
                    finally:
                        # The batch being committed finishes; no other is taken.
                        self._thread_stop = True
                        self._thread_wakeup.set()

                group.start_soon(stop_thread_when_cancelled)
                checkpoints = self._checkpoints()
                if checkpoints is not None:
                    checkpoints.start_background_checkpoints()
                    group.start_soon(self._run_checkpoints, checkpoints)
                # A limiter of its own: this thread lives as long as the store.
                await anyio.to_thread.run_sync(
                    self._thread_main, commit, loop, limiter=anyio.CapacityLimiter(1)
                )
                group.cancel_scope.cancel()
        finally:
            checkpoints = self._checkpoints()
            if checkpoints is not None:
                checkpoints.stop_background_checkpoints()
            self._running = False
            self._closed = True
            error = StoreClosedError("the store closed before this append was committed")
            while self._queue:
                _settle(self._queue.popleft()[1], error)

    def _checkpoints(self) -> _BackgroundCheckpoints | None:
        backend = self._backend
        if hasattr(backend, "start_background_checkpoints"):
            return backend  # type: ignore[return-value]
        return None

    async def _run_checkpoints(self, backend: _BackgroundCheckpoints) -> None:
        """Run the backend's checkpoints on a thread of their own, one at a time.

        Cancelled (the writer stopping), a checkpoint under way finishes first:
        the thread is never abandoned, so the backend closes after it.
        """
        limiter = anyio.CapacityLimiter(1)
        while True:
            await self._checkpoint_wanted.wait()
            self._checkpoint_wanted = anyio.Event()
            await anyio.to_thread.run_sync(backend.checkpoint_blocking, limiter=limiter)

    def _thread_main(self, commit: _BlockingCommit, loop: asyncio.AbstractEventLoop) -> None:
        """The committing thread: take what is queued, commit it, hand the outcomes over."""
        wakeup = self._thread_wakeup
        checkpoints = self._checkpoints()
        while not self._thread_stop:
            if not self._queue:
                if self._closed:
                    return
                # Idle first, then the queue looked at again: an append queued
                # meanwhile is either seen here or wakes the thread.
                self._thread_idle = True
                if not self._queue and not self._closed and not self._thread_stop:
                    wakeup.wait()
                self._thread_idle = False
                wakeup.clear()
                continue
            batch = self._take_batch()
            appends, atomic = self._appends_of(batch)
            outcome: list[AppendResult | AppendError] | BaseException
            try:
                outcome = commit(appends, atomic)
            except Exception as exc:
                outcome = exc
            loop.call_soon_threadsafe(self._settle_batch, batch, outcome)
            if checkpoints is not None and checkpoints.checkpoint_due():
                loop.call_soon_threadsafe(self._checkpoint_wanted.set)

    def _settle_batch(
        self, batch: list[_Ticket], outcome: list[AppendResult | AppendError] | BaseException
    ) -> None:
        """On the loop: give each caller of a committed (or failed) batch its outcome."""
        first, future = batch[0]
        if isinstance(outcome, BaseException):
            if isinstance(outcome, StoreError):
                log.warning("batch_failed", error=str(outcome), appends=len(batch))
            else:
                log.error("batch_crashed", appends=len(batch), exc_info=outcome)
                outcome = StoreError(f"the append failed: {outcome!r}")
            for _, waiting in batch:
                _settle(waiting, outcome)
            return
        assert isinstance(outcome, list)
        if isinstance(first, _Atomic):
            errors = [o for o in outcome if not isinstance(o, AppendResult)]
            if errors:
                _settle(future, errors[0])
                return
            self.batches += 1
            self.appends += len(outcome)
            _settle(future, outcome)  # type: ignore[arg-type]
            if outcome:
                self._on_commit(max(r.positions[-1] for r in outcome))  # type: ignore[union-attr]
            return
        self.batches += 1
        self.appends += len(batch)
        last = 0
        for (_, waiting), result in zip(batch, outcome, strict=True):
            if isinstance(result, AppendResult) and result.positions[-1] > last:
                last = result.positions[-1]
            _settle(waiting, result)
        if last:
            self._on_commit(last)

    async def _next_batch(self) -> list[_Ticket] | None:
        """On the loop: wait for appends and take a batch of them; None once closed and drained."""
        while not self._queue:
            if self._closed:
                return None
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
        # One pass of the event loop lets every caller woken by the last commit
        # queue its next append, so they share this batch.
        await anyio.lowlevel.checkpoint()
        return self._take_batch()

    @staticmethod
    def _appends_of(batch: list[_Ticket]) -> tuple[list[PendingAppend], bool]:
        """A batch's appends, and whether they are one all-or-nothing group."""
        first = batch[0][0]
        if isinstance(first, _Atomic):
            return list(first), True
        return [append for append, _ in batch], False  # type: ignore[misc]

    def _take_batch(self) -> list[_Ticket]:
        queue = self._queue
        batch: list[_Ticket] = []
        size = 0
        while queue and size < self._max_batch_events:
            append = queue[0][0]
            if isinstance(append, _Atomic):
                if not batch:  # an all-or-nothing group gets its own transaction
                    batch.append(queue.popleft())
                break
            batch.append(queue.popleft())
            size += len(append.events)
        return batch

    async def _commit(self, batch: list[_Ticket]) -> None:
        appends, atomic = self._appends_of(batch)
        outcome: list[AppendResult | AppendError] | BaseException
        try:
            # Shielded: once a batch is handed to the backend it finishes, so the
            # outcome each caller sees is the truth even while the store closes.
            with anyio.CancelScope(shield=True):
                outcome = await self._backend.commit(appends, atomic=atomic)
        except Exception as exc:  # a store or driver error: fail the batch, keep the writer
            outcome = exc
        self._settle_batch(batch, outcome)
