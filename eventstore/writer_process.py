"""Group commit from a process of its own: the log writer of a busy SQLite server.

The thread writer (:class:`~eventstore.writer.GroupCommitWriter`) commits on a
thread of the caller's process. In a server whose event loop is busy that
thread spends most of each commit waiting for the GIL: every SQLite statement
gives it away, and winning it back from the loop takes up to the interpreter's
switch interval (5 ms). Measured under 50 connections of single-event
OpenLineage ingest, a commit of 25 appends took 6.2 ms for 1.6 ms of work, and
the loop sat idle a fifth of the time waiting for it.

:class:`ProcessWriter` hands the appends to a child process instead
(``python -m eventstore.writer_child``), which owns the log's write connection
and its own GIL. The store's side only encodes each batch into a pipe and reads
the answers back, both on the event loop, with no thread to wake. Batches are
pipelined: the next one is sent while the child commits the last, and the child
commits whatever has queued in the pipe together.

What stays the same: each append gets its own result or refusal, in queue
order; an all-or-nothing group gets a transaction of its own; closing commits
everything queued before the child stops; an acknowledged append is committed.
If the child dies, the appends it had not answered fail with a StoreError
(whether they were stored is unknown, and a retry with the same event ids is
safe: it returns the original positions), and a new child takes over.

Only for SQLite: PostgreSQL already commits in the server's processes, and the
loop only waits on a socket.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import deque
from collections.abc import Callable

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from .backend import Backend
from .errors import StoreClosedError, StoreError
from .logs import child_log_arguments, get_logger
from .uri import StoreLocation
from .writer import GroupCommitWriter, _settle, _Ticket
from .writer_frames import READY, FrameBuffer, decode_outcomes, encode_batch, encode_open

__all__ = ["ProcessWriter"]

log = get_logger("eventstore.writer_process")

#: How long the child may take to open the store and answer ``ready``.
START_SECONDS = 60.0
#: How long a closing store waits for its child to commit what it was sent.
DRAIN_SECONDS = 60.0
#: The longest wait between two attempts to start a child after one died.
MAX_RESTART_DELAY = 5.0


def _command() -> list[str]:
    return [sys.executable, "-m", "eventstore.writer_child", *child_log_arguments()]


class ProcessWriter(GroupCommitWriter):
    """A group-commit writer whose commits run in a child process; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        location: StoreLocation,
        *,
        max_batch_events: int = 2000,
        on_commit: Callable[[int], None] = lambda position: None,
    ) -> None:
        if location.kind != "sqlite":
            raise ValueError("a log writer process serves SQLite stores only")
        super().__init__(backend, max_batch_events=max_batch_events, on_commit=on_commit)
        self._commit_blocking = None  # a submit wakes the sending task, not a thread
        self._location = location
        #: Batches sent to the child and not answered yet, in the order sent.
        self._in_flight: deque[list[_Ticket]] = deque()
        #: The child's process id (None before it starts).
        self.pid: int | None = None
        #: How many children were started (1 unless one died).
        self.starts = 0

    async def _start(self) -> anyio.abc.Process:
        """A child with the log open for writing; StoreError if it cannot open it."""
        try:
            process = await anyio.open_process(
                _command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # its log lines join ours
                # Not in our process group: a terminal's Ctrl-C is ours to act on;
                # the child stops when we close its stdin.
                start_new_session=True,
            )
        except OSError as exc:
            raise StoreError(f"cannot start the log writer process: {exc}") from exc
        assert process.stdin is not None
        assert process.stdout is not None
        answer: bytes | None = None
        try:
            with anyio.move_on_after(START_SECONDS):
                await process.stdin.send(encode_open(self._location))
                buffer = FrameBuffer()
                while answer is None:
                    buffer.feed(await process.stdout.receive())
                    found = buffer.frames()
                    answer = found[0] if found else None
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
        if answer == READY:
            self.pid = process.pid
            self.starts += 1
            log.info("log_writer_started", pid=process.pid)
            return process
        await self._stop(process)
        if answer is None:
            raise StoreError(
                "the log writer process did not start "
                f"(exit code {process.returncode}; its errors are above)"
            )
        refused = decode_outcomes(answer)
        raise refused if isinstance(refused, StoreError) else StoreError(str(refused))

    async def _stop(self, process: anyio.abc.Process) -> None:
        """Close the child's stdin (its order to stop) and wait; kill it if it hangs."""
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
            with anyio.move_on_after(DRAIN_SECONDS):
                await process.wait()
            if process.returncode is None:
                log.error("log_writer_hung", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if process.stdout is not None:
                await process.stdout.aclose()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the child, then send and settle batches until closed (and drained).

        A first child that cannot start (no process may be started here, or it
        fails before it answers) leaves the commits to a thread, as
        ``log_writer="thread"`` does, with a warning: the store opened, so it
        can be written without a child.
        """
        try:
            process = await self._start()
        except StoreError as exc:
            commit = getattr(self._backend, "commit_blocking", None)
            if commit is None:
                raise
            log.warning("log_writer_in_process", reason=str(exc))
            self._commit_blocking = commit
            self.pid = None
            await super().run(task_status=task_status)
            return
        self._running = True
        task_status.started()
        delay = 0.1
        try:
            while True:
                started = anyio.current_time()
                if await self._serve(process):
                    return
                if anyio.current_time() - started > 2 * MAX_RESTART_DELAY:
                    delay = 0.1  # it ran a good while: not a crash loop
                code = process.returncode
                log.error("log_writer_exited", code=code, restart_in=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_RESTART_DELAY)
                while True:
                    try:
                        process = await self._start()
                        break
                    except StoreError as exc:
                        # Nobody may wait on a writer that cannot start: fail what is queued.
                        while self._queue:
                            _settle(self._queue.popleft()[1], exc)
                        if self._closed:
                            return
                        log.error("log_writer_not_restarted", error=str(exc), retry_in=delay)
                        await anyio.sleep(delay)
                        delay = min(delay * 2, MAX_RESTART_DELAY)
        finally:
            self._running = False
            self._closed = True
            error = StoreClosedError("the store closed before this append was committed")
            while self._queue:
                _settle(self._queue.popleft()[1], error)

    async def _serve(self, process: anyio.abc.Process) -> bool:
        """Send and settle batches until closed (True) or the child ends on its own (False)."""
        assert process.stdin is not None
        assert process.stdout is not None
        stdin, stdout = process.stdin, process.stdout
        # One buffer for the child's answers: a drain after a cancelled receive
        # goes on from the part of a frame already read.
        answers = FrameBuffer()
        closed_by_us = False
        try:
            async with anyio.create_task_group() as group:

                async def receive() -> None:
                    try:
                        while True:
                            self._settle_answers(answers, await stdout.receive())
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        pass
                    group.cancel_scope.cancel()  # the child ended: nothing more to send it

                group.start_soon(receive)
                try:
                    await self._send(stdin)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    # The child died under a send: the receiver sees the end of
                    # its answers and ends this group; the finally fails the rest.
                    await anyio.sleep_forever()
                closed_by_us = True
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stdin.aclose()
                # The receiver reads the last answers, then the end of the pipe.
        finally:
            # Cancelled (the store's task group going down) or the child gone: the
            # child commits what it read, answers and exits once its stdin closes.
            with anyio.CancelScope(shield=True):
                if not closed_by_us and process.returncode is None:
                    await self._drain(process, answers)
                await self._stop(process)
                if self._in_flight:
                    error = StoreError(
                        f"the log writer process ended (exit code {process.returncode}) "
                        "before it answered; these appends may or may not be stored, and "
                        "a retry with the same event ids is safe"
                    )
                    while self._in_flight:
                        for _, future in self._in_flight.popleft():
                            _settle(future, error)
        return closed_by_us

    def _settle_answers(self, answers: FrameBuffer, data: bytes) -> None:
        """Settle the batches whose answers ``data`` completes, in the order sent."""
        answers.feed(data)
        for body in answers.frames():
            self._settle_batch(self._in_flight.popleft(), decode_outcomes(body))

    async def _drain(self, process: anyio.abc.Process, answers: FrameBuffer) -> None:
        """Close the child's stdin and settle the answers it still sends (bounded)."""
        assert process.stdin is not None
        assert process.stdout is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
        with anyio.move_on_after(DRAIN_SECONDS):
            with contextlib.suppress(
                anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                while self._in_flight:
                    self._settle_answers(answers, await process.stdout.receive())

    async def _send(self, stdin: anyio.abc.ByteSendStream) -> None:
        """Send what is queued, batch by batch, until closed and the queue is empty."""
        while (batch := await self._next_batch()) is not None:
            appends, atomic = self._appends_of(batch)
            self._in_flight.append(batch)
            # Shielded: half a frame in the pipe would leave the child out of step.
            with anyio.CancelScope(shield=True):
                await stdin.send(encode_batch(appends, atomic))
