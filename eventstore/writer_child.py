"""The log writer process of a SQLite store (``python -m eventstore.writer_child``).

Started by :class:`eventstore.writer_process.ProcessWriter` (see there why).
It reads the store to open from its stdin, opens the log for writing, answers
``ready``, then commits the batches of appends it reads from stdin, answering
each in order (:mod:`eventstore.writer_frames`). Whatever has queued in the
pipe while it committed is committed next, together: the group commit happens
here, with no event loop in between.

It stops when its stdin closes (the store closing, or its process dying):
every batch already read is committed and answered first, so an append is
either acknowledged or never seen. SIGINT and SIGTERM are ignored for the same
reason (a terminal's Ctrl-C reaches the whole process group): the store decides
when its writer stops. Exit code 3: the store could not be opened for writing
(the reason is the answer to the first frame).

Not imported by the ``eventstore`` package, so ``python -m`` runs it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Sequence

import anyio

from .errors import LedgerError, ReadOnlyStoreError
from .logs import configure_logging, get_logger
from .sqlite_backend import SQLiteBackend
from .store_factories import factory_for
from .writer_frames import (
    READY,
    FrameBuffer,
    decode_batch,
    decode_open,
    encode_outcomes,
    frame,
)

__all__ = ["main"]

log = get_logger("eventstore.writer_child")

#: Bytes read from the pipe at a time.
_READ_BYTES = 1 << 20


class _Pipe:
    """Frames from a file descriptor: blocking for the first, then whatever else is there."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = FrameBuffer()
        #: Whole frames read and not handed out yet, in order.
        self._frames: deque[bytes] = deque()
        self.closed = False

    def _read(self) -> None:
        data = os.read(self._fd, _READ_BYTES)
        if data:
            self._buffer.feed(data)
            self._frames.extend(self._buffer.frames())
        else:
            self.closed = True

    def first(self) -> bytes | None:
        """The next frame, waiting for it; None once the pipe closed."""
        while not self._frames:
            if self.closed:
                return None
            self._read()
        return self._frames.popleft()

    def waiting(self, limit: int) -> list[bytes]:
        """Frames already waiting (up to about ``limit`` bytes), without blocking."""
        found: list[bytes] = []
        size = 0
        while size < limit:
            if self._frames:
                found.append(self._frames.popleft())
                size += len(found[-1])
            elif self.closed or not select.select([self._fd], [], [], 0)[0]:
                break
            else:
                self._read()
        return found


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Checkpoints:
    """The backend's WAL checkpoints on a thread of their own, one at a time."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend
        self._running: threading.Thread | None = None

    def maybe(self) -> None:
        if self._running is not None and self._running.is_alive():
            return
        if self._backend.checkpoint_due():
            self._running = threading.Thread(
                target=self._backend.checkpoint_blocking,
                name="metaledger-log-checkpoint",
                daemon=True,
            )
            self._running.start()

    def join(self) -> None:
        if self._running is not None:
            self._running.join()


def _serve(backend: SQLiteBackend, pipe: _Pipe, out: int, max_batch_bytes: int) -> None:
    """Commit and answer batches until the pipe closes."""
    checkpoints = _Checkpoints(backend)
    try:
        while True:
            first = pipe.first()
            if first is None:
                return
            batches = [decode_batch(first)]
            for body in pipe.waiting(max_batch_bytes):
                batches.append(decode_batch(body))
            answers: list[bytes] = []
            # Consecutive batches share a transaction; an all-or-nothing one
            # gets its own (its failure must not touch the others).
            start = 0
            while start < len(batches):
                atomic = batches[start][0]
                end = start + 1
                if not atomic:
                    while end < len(batches) and not batches[end][0]:
                        end += 1
                group = [append for _, appends in batches[start:end] for append in appends]
                try:
                    outcomes = backend.commit_blocking(group, atomic)
                except Exception as exc:  # the batch failed: each of its callers hears why
                    if not isinstance(exc, LedgerError):
                        log.error("batch_crashed", appends=len(group), exc_info=exc)
                    answers += [encode_outcomes(exc)] * (end - start)
                else:
                    offset = 0
                    for _, appends in batches[start:end]:
                        answers.append(encode_outcomes(outcomes[offset : offset + len(appends)]))
                        offset += len(appends)
                start = end
            _write(out, b"".join(answers))
            checkpoints.maybe()
    finally:
        checkpoints.join()


async def _run(pipe: _Pipe, out: int, max_batch_bytes: int) -> int:
    opening = pipe.first()
    if opening is None:
        return 0
    location = decode_open(opening)
    backend = factory_for(location).log_backend(location, read_only=False)
    try:
        await backend.open(create=False)
    except LedgerError as exc:
        _write(out, encode_outcomes(exc))
        return 3
    try:
        assert isinstance(backend, SQLiteBackend)
        if backend.read_only:
            reason = backend.read_only_reason or "the log cannot be written"
            _write(out, encode_outcomes(ReadOnlyStoreError(reason)))
            return 3
        backend.start_background_checkpoints()
        _write(out, frame(READY))
        await anyio.to_thread.run_sync(_serve, backend, pipe, out, max_batch_bytes)
        backend.stop_background_checkpoints()
    finally:
        with anyio.CancelScope(shield=True):
            await backend.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point: commit what the store sends until it closes the pipe."""
    parser = argparse.ArgumentParser(prog="python -m eventstore.writer_child")
    parser.add_argument("--log-level", type=int, default=logging.WARNING)
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--max-batch-bytes", type=int, default=8 << 20)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_IGN)
    return anyio.run(_run, _Pipe(sys.stdin.fileno()), sys.stdout.fileno(), args.max_batch_bytes)


if __name__ == "__main__":
    sys.exit(main())
