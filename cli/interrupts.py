"""Ctrl-C in the CLI: a clean cancellation, then exit 130 and a line saying what was kept.

asyncio's own Ctrl-C handling cancels the main task natively, which skips
anyio's shielded clean-up: a connection could be closed while a worker thread
still ran SQLite on it (a segfault). :func:`run_interruptibly` turns SIGINT
into the cancellation of an anyio cancel scope instead: shielded commits
finish, worker threads are interrupted and joined, every connection closes
in order; then :class:`KeyboardInterrupt` reaches :func:`cli.errors.guarded`,
which exits 130.

A command whose work commits in steps says how far it got with
:func:`interrupted_after` (printed in place of the plain "Interrupted" line),
so the user is never told that nothing happened when something committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["InterruptedAfter", "interrupted_after", "run_interruptibly"]

T = TypeVar("T")


class InterruptedAfter(Exception):
    """Ctrl-C, after some of the command's work committed: ``message`` says what (exit 130)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def run_interruptibly(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``function(*args)``; SIGINT cancels it cleanly and raises KeyboardInterrupt.

    If the body finishes anyway (its work committed and it shielded the rest),
    its result is returned: the command did complete.
    """
    import anyio

    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:
        installed = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Later Ctrl-Cs only cancel again: clean-up is short, and a second
            # native interrupt is exactly what must not cut it off.
            loop.add_signal_handler(signal.SIGINT, scope.cancel)
            installed = True
        try:
            return await function(*args)
        except anyio.get_cancelled_exc_class() as exc:
            # The block said what committed (InterruptedAfter), then an await of
            # its clean-up (a store closing) was cancelled again, which replaced
            # that report: it is still true, so it is what the user reads.
            reported = _reported(exc)
            if reported is not None:
                raise reported from None
            raise
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
    raise KeyboardInterrupt


def _reported(exc: BaseException) -> InterruptedAfter | None:
    """The InterruptedAfter that ``exc`` was raised while handling, if any."""
    seen: set[int] = set()
    current = exc.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, InterruptedAfter):
            return current
        seen.add(id(current))
        current = current.__context__
    return None


@contextlib.asynccontextmanager
async def interrupted_after(describe: Callable[[], Awaitable[str | None]]) -> AsyncIterator[None]:
    """On Ctrl-C (cancellation) inside the block, report what ``describe()`` says committed.

    ``describe`` runs shielded once the block's work has stopped, and looks at
    the store (the truth, whatever the cancelled code believed); it returns
    None when nothing committed, and the plain interruption goes on.
    """
    import anyio

    try:
        yield
    except anyio.get_cancelled_exc_class():
        message: str | None = None
        with anyio.CancelScope(shield=True):
            try:
                message = await describe()
            except Exception:  # a store that cannot say: the plain message
                message = None
        if message is None:
            raise
        raise InterruptedAfter(message) from None
