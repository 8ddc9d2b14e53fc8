"""Child processes for the concurrent-rebuild tests (``python -m tests.concurrency_workers``).

Each child opens the store and its views, prints ``ready``, waits for a line
on stdin (the parent releases every child at once, so their work overlaps),
then does one thing and prints ``done``:

``rebuild URI``: ``projections rebuild`` of every projection (small batches).
``read URI``: what a reading command does: open the views (finishing any
pending rebuild) and catch up.
``rebuild+ URI``, ``read+ URI``: the same with the runs projection one version
ahead (upgraded code: opening the views rebuilds it blue/green).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio

from eventstore import open_store
from eventstore.logs import configure_logging
from projections import (
    Projection,
    ProjectionRunner,
    RunsProjection,
    default_projections,
)
from projections.views import live_views_store

#: Events per views transaction in the children: small, so that their batches interleave.
BATCH = 64


def bumped_projections() -> list[Projection]:
    """The default projections with ``runs`` one version ahead (a code upgrade)."""
    bumped = type("RunsBumped", (RunsProjection,), {"version": RunsProjection.version + 1})
    return [bumped() if p.name == "runs" else p for p in default_projections()]


async def _child(kind: str, uri: str) -> None:
    async with open_store(uri, create=False) as store:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await anyio.to_thread.run_sync(sys.stdin.readline)
        projections = bumped_projections() if kind.endswith("+") else None
        # open_views, with small batches for its rebuilds too.
        views_store = live_views_store(store)
        await views_store.open()
        try:
            runner = ProjectionRunner(store, views_store, projections, batch_size=BATCH)
            if kind.startswith("rebuild"):
                await runner.prepare(auto_rebuild=False)
                await runner.rebuild()
            elif kind.startswith("read"):
                await runner.prepare()
                await runner.catch_up()
            else:
                raise SystemExit(f"unknown worker {kind!r}")
        finally:
            await views_store.close()
    sys.stdout.write("done\n")
    sys.stdout.flush()


def spawn(kind: str, uri: str) -> subprocess.Popen[str]:
    """Start one child; it prints ``ready`` and waits for a line on stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.concurrency_workers", kind, uri],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


if __name__ == "__main__":
    configure_logging()
    anyio.run(_child, sys.argv[1], sys.argv[2])
