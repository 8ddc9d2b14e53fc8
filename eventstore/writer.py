"""Group commit: one writer task turns many concurrent appends into few transactions.

Callers put their append on a queue and wait. The writer takes whatever has
queued (up to a cap) while the previous transaction was committing, and commits
it as one batch: under load, fifty waiting appends cost one fsync instead of
fifty. Each append still gets its own result or error; a conflict in one never
fails its batch-mates (the planner decides each append alone, in queue order).

Cancellation: a caller cancelled while waiting leaves its append on the queue;
the writer commits it whole or not at all, and a retry with the same event ids
returns the original positions. Closing drains the queue, then stops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .backend import Backend
from .envelope import AppendResult
from .errors import AppendError, StoreClosedError, StoreError
from .planner import PendingAppend

__all__ = ["GroupCommitWriter"]

log = structlog.get_logger("eventstore.writer")


@dataclass(slots=True, eq=False)
class _Ticket:
    append: PendingAppend
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: AppendResult | BaseException | None = None

    def settle(self, outcome: AppendResult | BaseException) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()


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
        send, receive = anyio.create_memory_object_stream[_Ticket](math.inf)
        self._send: MemoryObjectSendStream[_Ticket] = send
        self._receive: MemoryObjectReceiveStream[_Ticket] = receive
        self._closed = False
        #: Counters for benchmarks and ``store describe``.
        self.batches = 0
        self.appends = 0

    async def submit(self, append: PendingAppend) -> AppendResult:
        """Queue ``append`` and wait for its outcome; raise its AppendError or StoreError."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        ticket = _Ticket(append)
        try:
            self._send.send_nowait(ticket)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise StoreClosedError("the store is closed") from exc
        await ticket.done.wait()
        outcome = ticket.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    def close(self) -> None:
        """Refuse new appends; the writer drains what is queued, then returns."""
        self._closed = True
        self._send.close()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer loop: runs until :meth:`close`, then drains the queue."""
        task_status.started()
        pending: list[_Ticket] = []
        try:
            async for first in self._receive:
                pending = [first]
                size = len(first.append.events)
                while size < self._max_batch_events:
                    try:
                        ticket = self._receive.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    pending.append(ticket)
                    size += len(ticket.append.events)
                await self._commit(pending)
                pending = []
        finally:
            # Cancelled (the store's task group is going down): nobody may wait forever.
            self._closed = True
            error = StoreClosedError("the store closed before this append was committed")
            for ticket in pending:
                ticket.settle(error)
            while True:
                try:
                    self._receive.receive_nowait().settle(error)
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            self._receive.close()

    async def _commit(self, tickets: list[_Ticket]) -> None:
        try:
            # Shielded: once a batch is handed to the backend it finishes, so the
            # outcome each caller sees is the truth even while the store closes.
            with anyio.CancelScope(shield=True):
                outcomes: list[AppendResult | AppendError] = await self._backend.commit(
                    [t.append for t in tickets]
                )
        except StoreError as exc:
            log.warning("batch_failed", error=str(exc), appends=len(tickets))
            for ticket in tickets:
                ticket.settle(exc)
            return
        except Exception as exc:  # a bug or driver error: fail the batch, keep the writer
            log.exception("batch_crashed", appends=len(tickets))
            for ticket in tickets:
                ticket.settle(StoreError(f"the append failed: {exc!r}"))
            return
        self.batches += 1
        self.appends += len(tickets)
        last = 0
        for ticket, outcome in zip(tickets, outcomes, strict=True):
            if isinstance(outcome, AppendResult):
                last = max(last, outcome.position)
            ticket.settle(outcome)
        if last:
            self._on_commit(last)
