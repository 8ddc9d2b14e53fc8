"""Running SQLite work in a thread so that cancelling the caller can never crash the process.

A thread cannot be cancelled. If the awaiting task is cancelled and goes on to
close the connection while the thread still runs SQLite on it, CPython crashes
(a segfault on Ctrl-C). So:

- :func:`run_sync_interruptibly` runs a function in a worker thread; when the
  caller is cancelled it interrupts the SQLite statement (``interrupt``, which
  is safe from any thread) and waits for the thread to return before the
  cancellation goes on, so the caller's clean-up never races the thread;
- the function holds a per-connection :class:`threading.Lock` while it uses the
  connection, and closing takes that lock (:func:`close_when_idle`): even a
  cancellation that skips the wait (a second, native ``Task.cancel``) cannot
  close a connection under a running statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread

__all__ = ["close_when_idle", "run_sync_interruptibly"]

T = TypeVar("T")


async def run_sync_interruptibly(
    function: Callable[..., T], *args: Any, interrupt: Callable[[], None]
) -> T:
    """``function(*args)`` in a worker thread; on cancellation, ``interrupt()`` and join it.

    The cancellation is re-raised once the thread has returned, whatever it
    returned: a transaction that committed just before the interrupt landed
    stays committed, and the caller learns that from the store, not from here.
    """
    future = asyncio.get_running_loop().run_in_executor(None, partial(function, *args))
    try:
        return await asyncio.shield(future)
    except BaseException:
        if not future.done():
            interrupt()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([future])
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller gets
        raise


def _close_holding(conn: sqlite3.Connection, lock: threading.Lock) -> None:
    with lock:
        conn.close()


async def close_when_idle(
    conn: sqlite3.Connection, lock: threading.Lock, *, interrupt: bool = False
) -> None:
    """Close ``conn`` once no thread runs on it (its ``lock`` free); shielded from cancellation.

    With ``interrupt``, a statement a thread is still running is interrupted
    first (it rolls back). An idle connection is never interrupted: SQLite
    would then interrupt the checkpoint its close runs, leaving the ``-wal``
    and ``-shm`` files behind.
    """
    if lock.acquire(blocking=False):
        try:
            conn.close()
        finally:
            lock.release()
        return
    if interrupt:
        conn.interrupt()
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_close_holding, conn, lock)
