"""The group-commit writer's committing thread (a backend with ``commit_blocking``).

A fake backend records each batch it is given and can hold a commit at a
gate, so the tests see exactly which appends shared a batch and what happens
while a commit is in progress. Every wait is on an event with a timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import anyio.abc
import pytest

from eventstore.envelope import AppendResult
from eventstore.errors import AppendError, ConcurrencyError, StoreClosedError
from eventstore.planner import PendingAppend
from eventstore.writer import GroupCommitWriter

WAIT = 30.0


class GatedBackend:
    """Commits from the caller's thread; the first commit waits for ``gate``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.gate = threading.Event()
        self.second_committed = threading.Event()
        self.position = 0

    def commit_blocking(
        self, appends: Sequence[PendingAppend], atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        if not self.batches:
            self.first_started.set()
            assert self.gate.wait(WAIT)
        self.batches.append([a.stream_id for a in appends])
        outcomes: list[AppendResult | AppendError] = []
        for append in appends:
            if append.stream_id == "refused":
                outcomes.append(ConcurrencyError("refused", 0, 1))
                continue
            self.position += 1
            outcomes.append(AppendResult((self.position,), 1))
        if len(self.batches) == 2:
            self.second_committed.set()
        return outcomes


def pending(stream_id: str) -> PendingAppend:
    return PendingAppend(stream_id, [], "any", b"{}")


async def wait_thread_event(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, WAIT)


async def test_batches_follow_each_other_without_the_event_loop() -> None:
    """While the loop is blocked, the thread takes and commits the next batch by itself."""
    backend = GatedBackend()
    committed: list[int] = []
    writer = GroupCommitWriter(backend, on_commit=committed.append)  # type: ignore[arg-type]
    results: dict[str, AppendResult | AppendError] = {}
    all_in = anyio.Event()

    async def submit(stream_id: str) -> None:
        (results[stream_id],) = await writer.submit_each([pending(stream_id)])
        if len(results) == 3:
            all_in.set()

    async with anyio.create_task_group() as group:
        await group.start(writer.run)
        group.start_soon(submit, "a")
        await wait_thread_event(backend.first_started)
        group.start_soon(submit, "b")
        group.start_soon(submit, "refused")
        await anyio.wait_all_tasks_blocked()
        # The loop stays blocked here: only the committing thread can take "b".
        backend.gate.set()
        assert backend.second_committed.wait(WAIT)
        await all_in.wait()  # now the loop hands the outcomes over
        writer.close()
    assert backend.batches == [["a"], ["b", "refused"]]
    assert results["a"] == AppendResult((1,), 1)
    assert results["b"] == AppendResult((2,), 1)
    assert isinstance(results["refused"], ConcurrencyError)
    assert committed == [1, 2]


async def test_cancelled_the_batch_in_hand_finishes_and_the_queue_is_refused() -> None:
    backend = GatedBackend()
    writer = GroupCommitWriter(backend)  # type: ignore[arg-type]
    outcomes: dict[str, object] = {}

    async def submit(stream_id: str) -> None:
        try:
            outcomes[stream_id] = await writer.submit(pending(stream_id))
        except StoreClosedError as exc:
            outcomes[stream_id] = exc

    stop = anyio.CancelScope()

    async def run_writer(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with stop:  # as the store's task group going down cancels it
            await writer.run(task_status=task_status)

    async with anyio.create_task_group() as group:
        await group.start(run_writer)
        group.start_soon(submit, "in-hand")
        await wait_thread_event(backend.first_started)
        group.start_soon(submit, "queued")
        await anyio.wait_all_tasks_blocked()
        stop.cancel()
        await anyio.wait_all_tasks_blocked()  # the writer has seen it
        backend.gate.set()
    assert outcomes["in-hand"] == AppendResult((1,), 1)
    assert isinstance(outcomes["queued"], StoreClosedError)
    assert backend.batches == [["in-hand"]]
    with pytest.raises(StoreClosedError):
        await writer.submit(pending("late"))


async def test_close_drains_the_queue_then_the_thread_ends() -> None:
    backend = GatedBackend()
    backend.gate.set()
    writer = GroupCommitWriter(backend)  # type: ignore[arg-type]
    results: list[AppendResult] = []

    async def submit(stream_id: str) -> None:
        results.append(await writer.submit(pending(stream_id)))

    async with anyio.create_task_group() as group:
        await group.start(writer.run)
        for n in range(20):
            group.start_soon(submit, f"s{n}")
        await anyio.wait_all_tasks_blocked()
        writer.close()
    assert sorted(r.positions[0] for r in results) == list(range(1, 21))
    assert sum(len(b) for b in backend.batches) == 20
