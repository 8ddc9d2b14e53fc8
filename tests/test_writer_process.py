"""The log writer process of a SQLite store (``open_store(..., log_writer="process")``).

The appends of a busy server are committed by a child process
(``eventstore/writer_process.py``). These tests hold it to the thread writer's
promises, on a real store and a real child: every append gets its own outcome
in order, refusals and retries answer as they do in-process, an acknowledged
append is stored, closing commits what is queued, a killed child is replaced
(its unanswered appends fail, safe to retry), and a killed parent leaves a
child that commits what it read and exits. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import anyio
import pytest

from eventstore import NewEvent, RunDeleted, open_store
from eventstore.envelope import AppendResult
from eventstore.errors import (
    AppendError,
    ConcurrencyError,
    EventIdConflictError,
    InvalidEventError,
    StoreBusyError,
    StoreError,
    StoreFullError,
)
from eventstore.writer import GroupCommitWriter
from eventstore.writer_frames import FrameBuffer, decode_outcomes, encode_outcomes, frame
from eventstore.writer_process import ProcessWriter

from .test_server_views_process import gone
from .workers import spawn

pytestmark = pytest.mark.anyio

WAIT = 60.0


def deleted(reason: str) -> NewEvent:
    return NewEvent(RunDeleted(run_id=uuid.uuid4(), reason=reason))


async def test_concurrent_appends_are_committed_together_once_each(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:
        writer = store.log._writer
        assert isinstance(writer, ProcessWriter)
        assert writer.pid is not None
        assert writer.pid != os.getpid()
        acknowledged: dict[str, int] = {}

        async def task(n: int) -> None:
            for i in range(20):
                event = deleted(f"{n}-{i}")
                result = await store.append(f"stream-{n}", [event])
                acknowledged[str(event.event_id)] = result.position
                # Read your writes: the child committed before it answered.
                assert (await store.head()) >= result.position

        async with anyio.create_task_group() as group:
            for n in range(50):
                group.start_soon(task, n)
        assert writer.appends == 1000
        assert writer.batches < 1000  # appends shared commits
        stored = {e.event_id_text: e.position async for e in store.read_all()}
        assert stored == acknowledged
        assert sorted(stored.values()) == list(range(1, 1001))
        # Each stream's events are at versions 1..20, in the order appended.
        versions = Counter([e.stream_id async for e in store.read_all()])
        assert set(versions.values()) == {20}
        assert (await store.verify()).ok


async def test_refusals_and_retries_answer_as_in_process(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:
        event = deleted("first")
        first = await store.append("s", [event], expected_version="no_stream")
        assert first.positions == (1,)
        assert not first.duplicate
        # A retry of the same event returns the original position.
        again = await store.append("s", [event], expected_version="no_stream")
        assert again.positions == (1,)
        assert again.duplicate
        with pytest.raises(ConcurrencyError) as conflict:
            await store.append("s", [deleted("late")], expected_version=0)
        assert conflict.value.stream_id == "s"
        assert conflict.value.actual == 1
        other_body = NewEvent(RunDeleted(run_id=uuid.uuid4(), reason="x"), event_id=event.event_id)
        with pytest.raises(EventIdConflictError):
            await store.append("t", [other_body])
        # Independent appends: each its own outcome, in order.
        encoded = store.log.encode_events
        outcomes = await store.log.append_each(
            [
                ("a", encoded([deleted("a")]), "no_stream"),
                ("s", encoded([deleted("s2")]), 5),
                ("b", encoded([deleted("b")]), "any"),
            ]
        )
        assert isinstance(outcomes[0], AppendResult)
        assert isinstance(outcomes[1], ConcurrencyError)
        assert isinstance(outcomes[2], AppendResult)
        # All or nothing: one refusal stores none of the group.
        with pytest.raises(ConcurrencyError):
            await store.log.append_many(
                [("c", [deleted("c")], "no_stream"), ("a", [deleted("a2")], "no_stream")]
            )
        stored = [e.stream_id async for e in store.read_all()]
        assert stored == ["s", "a", "b"]
        together = await store.log.append_many(
            [("c", [deleted("c")], "no_stream"), ("d", [deleted("d")], "no_stream")]
        )
        assert [r.positions for r in together] == [(4,), (5,)]
        assert (await store.verify()).ok


async def test_closing_commits_everything_queued(tmp_path: Path) -> None:
    results: list[AppendResult] = []
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:

        async def one(n: int) -> None:
            results.append(await store.append(f"s{n % 5}", [deleted(str(n))]))

        async with anyio.create_task_group() as group:
            for n in range(300):
                group.start_soon(one, n)
            await anyio.wait_all_tasks_blocked()
            store.log._close_writer()  # what leaving the block does, with appends queued
    assert len(results) == 300
    async with open_store(tmp_path / "s") as reopened:
        assert await reopened.head() == 300
        assert (await reopened.verify()).ok


async def test_a_killed_child_is_replaced_and_no_acknowledged_append_is_lost(
    tmp_path: Path,
) -> None:
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:
        writer = store.log._writer
        assert isinstance(writer, ProcessWriter)
        first_pid = writer.pid
        assert first_pid is not None
        acknowledged: set[str] = set()
        failed: list[StoreError] = []
        killed = anyio.Event()

        async def task(n: int) -> None:
            for i in range(40):
                event = deleted(f"{n}-{i}")
                try:
                    await store.append(f"stream-{n}", [event])
                except StoreError as exc:  # unanswered when the child died: retry is safe
                    failed.append(exc)
                    retried = await store.append(f"stream-{n}", [event])
                    assert retried.positions
                acknowledged.add(str(event.event_id))
                if n == 0 and i == 10:
                    os.kill(first_pid, signal.SIGKILL)
                    killed.set()

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(task, n)
        assert killed.is_set()
        assert writer.starts == 2
        assert writer.pid != first_pid
        assert all("retry with the same event ids is safe" in str(e) for e in failed)
        stored = Counter([e.event_id_text async for e in store.read_all()])
        assert set(stored) == acknowledged
        assert set(stored.values()) == {1}  # the retries stored nothing twice
        assert (await store.verify()).ok
    assert gone(first_pid)


async def test_a_killed_parent_leaves_a_child_that_commits_and_exits(tmp_path: Path) -> None:
    store = str(tmp_path / "crashy")
    child = spawn("crashloop", store, "process")
    assert child.stdout is not None
    first = child.stdout.readline().split()
    assert first[0] == "writer", first
    writer_pid = int(first[1])
    assert child.stdout.readline().strip() == "ready"
    acknowledged: set[str] = set()
    for _ in range(30):
        line = child.stdout.readline().split()
        assert line, "the child died early"
        assert line[0] == "ack", line
        acknowledged.update(line[2:])
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=WAIT)
    for raw in rest.splitlines():
        parts = raw.split()
        if parts and parts[0] == "ack" and len(parts) == 5:
            acknowledged.update(parts[2:])
    # Its stdin closed with the parent: it commits what it read, then exits.
    deadline = time.monotonic() + WAIT
    while not gone(writer_pid):
        assert time.monotonic() < deadline, "the orphaned log writer never exited"
        await anyio.sleep(0.05)
    async with open_store(store) as opened:
        stored = Counter([e.event_id_text async for e in opened.read_all()])
        assert (await opened.verify()).ok
    assert acknowledged <= set(stored)
    assert set(stored.values()) == {1}


async def test_read_only_handles_keep_the_thread_writer(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s", default_stack=False) as store:
        await store.append("s", [deleted("x")])
    async with open_store(tmp_path / "s", read_only=True, log_writer="process") as reader:
        assert type(reader.log._writer) is GroupCommitWriter
    async with open_store(tmp_path / "s", log_writer="thread") as threaded:
        assert type(threaded.log._writer) is GroupCommitWriter


@pytest.mark.postgres
async def test_postgresql_stores_keep_committing_from_the_loop(postgres_uri: str) -> None:
    async with open_store(postgres_uri, log_writer="process", default_stack=False) as store:
        assert type(store.log._writer) is GroupCommitWriter
        assert (await store.append("s", [deleted("pg")])).positions


def test_outcomes_cross_the_pipe_whole() -> None:
    outcomes: list[AppendResult | AppendError] = [
        AppendResult((7, 8), 2),
        AppendResult((3,), 1, duplicate=True),
        ConcurrencyError("s", "no_stream", 4),
        EventIdConflictError(["e1", "e2"], "is already stored with another body"),
        InvalidEventError("too large"),
    ]
    decoded = decode_outcomes(encode_outcomes(outcomes)[4:])
    assert isinstance(decoded, list)
    assert decoded[:2] == outcomes[:2]
    assert isinstance(decoded[2], ConcurrencyError)
    assert (decoded[2].stream_id, decoded[2].expected, decoded[2].actual) == ("s", "no_stream", 4)
    assert isinstance(decoded[3], EventIdConflictError)
    assert decoded[3].event_ids == ("e1", "e2")
    assert isinstance(decoded[4], InvalidEventError)
    assert str(decoded[4]) == "too large"
    for failure in (StoreBusyError("busy"), StoreFullError("the disk is full")):
        back = decode_outcomes(encode_outcomes(failure)[4:])
        assert type(back) is type(failure)
        assert str(back) == str(failure)
    crash = decode_outcomes(encode_outcomes(RuntimeError("boom"))[4:])
    assert type(crash) is StoreError
    assert "boom" in str(crash)


def test_frames_are_cut_whole_from_any_reads() -> None:
    bodies = [b"a" * n for n in (0, 1, 5000, 3)]
    stream = b"".join(frame(b) for b in bodies)
    buffer, found = FrameBuffer(), []
    for start in range(0, len(stream), 7):  # reads that split headers and bodies
        buffer.feed(stream[start : start + 7])
        found += buffer.frames()
    assert found == bodies
    assert len(buffer) == 0
    broken = FrameBuffer()
    broken.feed(b"\xff\xff\xff\xff")
    with pytest.raises(StoreError, match="out of step"):
        broken.frames()


async def test_children_killed_again_and_again_under_load_lose_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    """Kills land wherever they land: mid-commit, mid-answer, while a batch is being sent."""
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:
        writer = store.log._writer
        assert isinstance(writer, ProcessWriter)
        acknowledged: set[str] = set()
        # Set as the acknowledged appends pass 250, 500...: a kill after each.
        progress = [anyio.Event() for _ in range(5)]

        async def task(n: int) -> None:
            for i in range(60):
                event = deleted(f"{n}-{i}")
                while True:
                    try:
                        await store.append(f"stream-{n}", [event])
                        break
                    except StoreError:
                        continue  # unanswered when a child died: the same event again
                acknowledged.add(str(event.event_id))
                for k, passed in enumerate(progress):
                    if len(acknowledged) >= (k + 1) * 250:
                        passed.set()

        async def killer() -> None:
            for passed in progress:
                with anyio.fail_after(WAIT):
                    await passed.wait()
                pid = writer.pid
                assert pid is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        async with anyio.create_task_group() as group:
            group.start_soon(killer)
            for n in range(30):
                group.start_soon(task, n)
        assert writer.starts >= 2
        stored = Counter([e.event_id_text async for e in store.read_all()])
        assert set(stored) == acknowledged
        assert set(stored.values()) == {1}
        assert (await store.verify()).ok


async def test_a_child_that_cannot_start_leaves_the_commits_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    import eventstore.writer_process

    # A child that dies before it answers, as one that cannot import us would.
    monkeypatch.setattr(
        eventstore.writer_process, "_command", lambda: [sys.executable, "-c", "raise SystemExit(7)"]
    )
    async with open_store(tmp_path / "s", log_writer="process", default_stack=False) as store:
        writer = store.log._writer
        assert isinstance(writer, ProcessWriter)
        assert writer.pid is None
        assert writer.starts == 0
        results = [await store.append("s", [deleted(str(n))]) for n in range(3)]
        assert [r.positions for r in results] == [(1,), (2,), (3,)]
        assert (await store.verify()).ok
    assert "log_writer_in_process" in caplog.text
    assert "exit code 7" in caplog.text


def test_the_childs_pipe_hands_out_every_frame_once_in_order() -> None:
    from eventstore.writer_child import _Pipe

    read_end, write_end = os.pipe()
    try:
        bodies = [bytes([n]) * (n * 300) for n in range(1, 8)]
        os.write(write_end, b"".join(frame(b) for b in bodies[:3]))
        pipe = _Pipe(read_end)
        got = [pipe.first()]  # one read brings three frames: two wait their turn
        os.write(write_end, b"".join(frame(b) for b in bodies[3:]))
        os.close(write_end)  # the end: a pipe that lost a frame cannot hang the test
        write_end = -1
        got.append(pipe.first())
        got += pipe.waiting(1 << 20)
        while (body := pipe.first()) is not None:
            got.append(body)
        assert got == bodies
        assert pipe.closed
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
