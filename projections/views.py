"""Opening the views: live beside the log, or replayed as of a past point.

async with open_store() as store, open_views(store) as views:
    await views.catch_up()                 # fresh reads in a short-lived process
    runs = await views.query.runs(limit=10)

async with views_as_of(store, position=1200) as past:
    stacks = await past.query.stacks()     # the same queries, as the log stood then
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from anyio.abc import TaskStatus

from eventstore import EventStore

from .definition import Projection
from .errors import QueryError, ViewsStoreError
from .queries import Queries
from .runner import ProgressCallback, ProjectionFault, ProjectionRunner, ProjectionStatus
from .views_store import VIEWS_FILE, SQLiteViewsStore, ViewsStore

__all__ = ["Views", "live_views_store", "open_views", "views_as_of"]

log = structlog.get_logger("projections.views")


class Views:
    """Views over one store: queries, and the runner that keeps them current."""

    def __init__(
        self,
        store: EventStore,
        views_store: ViewsStore,
        runner: ProjectionRunner,
        *,
        as_of: int | None = None,
    ) -> None:
        self.store = store
        self.views_store = views_store
        self.runner = runner
        self.query = Queries(views_store, store)
        #: The log position the views were replayed to, for views opened "as of"; else None.
        self.as_of = as_of

    async def catch_up(self, *, progress: ProgressCallback | None = None) -> int:
        """Bring every projection up to the log's head; return that position."""
        if self.as_of is not None:
            return self.as_of
        return await self.runner.catch_up(progress=progress)

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Wait until the views include ``position`` (read-your-writes after an append)."""
        await self.runner.wait_for(position, timeout)

    async def follow(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the views current until cancelled; start it in your task group."""
        await self.runner.follow(task_status=task_status)

    async def rebuild(
        self, name: str | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        """Rebuild one projection (or all) blue/green from the log."""
        await self.runner.rebuild(name, progress=progress)

    async def status(self) -> list[ProjectionStatus]:
        """Each projection's position, lag, version, state, last error and faults."""
        return await self.runner.status()

    async def faults(self) -> list[ProjectionFault]:
        """The events the projections could not apply (and went past), in log order."""
        return await self.runner.faults()


def _default_views_path(store: EventStore) -> Path:
    if store.location.path is None:
        raise ViewsStoreError(f"{store.location.display}: no directory for a views file")
    return store.location.path / VIEWS_FILE


def live_views_store(store: EventStore, path: Path | None = None) -> ViewsStore:
    """Where a store's live views go: ``views.db`` beside a SQLite log, schema ``views`` on
    PostgreSQL."""
    if store.location.kind == "postgresql" and path is None:
        from .postgres_views_store import PostgresViewsStore

        backend: Any = store.backend
        return PostgresViewsStore(backend.dsn, backend.views_schema)
    return SQLiteViewsStore(path or _default_views_path(store))


@contextlib.asynccontextmanager
async def open_views(
    store: EventStore,
    *,
    path: Path | None = None,
    memory: bool = False,
    projections: Sequence[Projection] | None = None,
    auto_rebuild: bool = True,
    progress: ProgressCallback | None = None,
) -> AsyncIterator[Views]:
    """Open the live views of ``store`` (by default ``views.db`` beside its log).

    Projections whose code version differs from the stored one are rebuilt
    blue/green on opening (``auto_rebuild``), reporting through ``progress``.
    A views file that cannot be read is set aside and rebuilt from the log.
    """
    views_store = SQLiteViewsStore(None) if memory else live_views_store(store, path)
    try:
        await views_store.open()
    except ViewsStoreError as exc:
        if not isinstance(views_store, SQLiteViewsStore) or views_store.path is None:
            raise
        views_store = await _set_aside_and_reopen(views_store.path, exc)
    try:
        runner = ProjectionRunner(store, views_store, projections)
        await runner.prepare(auto_rebuild=auto_rebuild, progress=progress)
        yield Views(store, views_store, runner)
    finally:
        await views_store.close()


def _move_files(path: Path, aside: Path | None) -> None:
    """Move (or with ``aside`` None, delete) a SQLite file and its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if aside is None:
            source.unlink(missing_ok=True)
        elif source.exists():
            source.rename(Path(f"{aside}{suffix}"))


async def _set_aside_and_reopen(path: Path, error: Exception) -> SQLiteViewsStore:
    aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
    log.warning("views_unreadable", path=str(path), error=str(error), moved_to=str(aside))
    await anyio.to_thread.run_sync(_move_files, path, aside)
    views_store = SQLiteViewsStore(path)
    await views_store.open()
    return views_store


@contextlib.asynccontextmanager
async def views_as_of(
    store: EventStore,
    *,
    position: int | None = None,
    when: datetime | None = None,
    into: Path | None = None,
    projections: Sequence[Projection] | None = None,
    progress: ProgressCallback | None = None,
) -> AsyncIterator[Views]:
    """The views as the log stood at ``position`` or time ``when``, replayed into scratch.

    The scratch store is in memory, or a ``views.db`` in directory ``into`` (kept
    for inspection). Give at most one of ``position`` and ``when``; neither means
    the current head.
    """
    if position is not None and when is not None:
        raise QueryError("give a position or a time, not both")
    head = await store.head()
    if when is not None:
        target = await store.position_at(when)
    elif position is not None:
        if position < 0:
            raise QueryError("a log position is >= 0")
        target = min(position, head)
    else:
        target = head
    if into is not None:
        await anyio.Path(into).mkdir(parents=True, exist_ok=True)
        scratch_path: Path | None = into / VIEWS_FILE
        await anyio.to_thread.run_sync(_move_files, into / VIEWS_FILE, None)
    else:
        scratch_path = None
    scratch = SQLiteViewsStore(scratch_path)
    await scratch.open()
    try:
        runner = ProjectionRunner(store, scratch, projections)
        await runner.prepare(auto_rebuild=False)
        await runner.catch_up(to_position=target, progress=progress)
        yield Views(store, scratch, runner, as_of=target)
    finally:
        await scratch.close()
