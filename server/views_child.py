"""The views follower child of ``metaledger serve`` (``python -m server.views_child``).

Started by :func:`server.views_process.follow_in_child` (see there why): opens
the store named by ``$METALEDGER_STORE`` and its live views, catches up,
writes ``ready`` on stdout, then applies new appends to the views until its
stdin closes (the server's order to stop, and what happens when the server
dies, so it never outlives it) or it gets SIGTERM or SIGINT; then it exits 0.
Its CPU priority is lowered (``nice`` 10): the requests come first. Exit code 3:
the views file cannot be written (views in this process's memory would serve
nobody).

Not imported by the ``server`` package, so ``python -m`` runs it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

import anyio

from eventstore import open_store, resolve_store
from eventstore.logs import configure_logging
from projections import Views, open_views

from .views_process import READY

__all__ = ["main"]
#: How much lower the child's CPU priority is than the server's (``nice``).
CHILD_NICENESS = 10
#: How often the child looks for appends (SQLite cannot notify another process).
CHILD_POLL_SECONDS = 0.05


async def _until_stdin_closes() -> None:
    """Return once the parent closes our stdin (or goes away, which closes it)."""
    fd = sys.stdin.fileno()
    while True:
        await anyio.wait_readable(fd)
        if not os.read(fd, 4096):
            return


async def _until_signalled() -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


async def _child() -> int:
    location = resolve_store(None)  # $METALEDGER_STORE, as the server resolved it
    async with (
        open_store(location, create=False, poll_interval=CHILD_POLL_SECONDS) as store,
        open_views(store, fresh=False) as views,
    ):
        if views.memory_fallback is not None:
            return 3  # views in this process's memory would help nobody
        await _follow(views)
    return 0


async def _follow(views: Views) -> None:
    async with anyio.create_task_group() as group:
        await group.start(views.follow)
        sys.stdout.buffer.write(READY + b"\n")
        sys.stdout.buffer.flush()

        async def stop_when(waiter: object) -> None:
            await waiter()  # type: ignore[operator]
            group.cancel_scope.cancel()

        group.start_soon(stop_when, _until_stdin_closes)
        group.start_soon(stop_when, _until_signalled)


def main(argv: Sequence[str] | None = None) -> int:
    """The child's entry point: follow the log into the views until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m server.views_child")
    parser.add_argument("--log-level", type=int, default=logging.WARNING)
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(CHILD_NICENESS)  # the requests first; the views take what is left
    with contextlib.suppress(KeyboardInterrupt):  # a SIGINT before the handler is in place
        return anyio.run(_child, backend_options={"use_uvloop": _has_uvloop()})
    return 0


def _has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


if __name__ == "__main__":
    sys.exit(main())
