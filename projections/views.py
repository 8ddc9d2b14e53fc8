"""Opening the views: live beside the log, or replayed as of a past point.

async with open_store() as store, open_views(store) as views:
    runs = await views.query.runs(limit=10)  # fresh: caught up to the log's head first

async with open_views(store, fresh=False) as views:
    runs = await views.query.runs(limit=10)  # as far as the views got (catch_up / follow)

async with views_as_of(store, position=1200) as past:
    stacks = await past.query.stacks()     # the same queries, as the log stood then
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from eventstore import EventStore
from eventstore.logs import get_logger

from .definition import Projection
from .errors import ProjectionFailedError, QueryError, ViewsStoreError
from .queries import Queries
from .runner import ProgressCallback, ProjectionRunner, ProjectionStatus
from .transactions import Tx
from .views_store import VIEWS_FILE, SQLiteViewsStore, ViewsStore

__all__ = ["Views", "live_views_store", "open_views", "views_as_of"]

log = get_logger("projections.views")


class _FreshReads:
    """A views store whose reads first bring the views up to the log's head.

    Queries read through it, so every query of fresh views answers as of (at
    least) the head when it was called, as the CLI does; writes go straight through.
    """

    def __init__(self, inner: ViewsStore, views: Views) -> None:
        self._inner = inner
        self._views = views
        self.location = inner.location

    async def open(self) -> None:
        """Open the wrapped store."""
        await self._inner.open()

    async def close(self) -> None:
        """Close the wrapped store."""
        await self._inner.close()

    async def transact(self, body: Callable[[], Tx[Any]]) -> Any:
        """A write transaction, unchanged."""
        return await self._inner.transact(body)

    async def read(self, body: Callable[[], Tx[Any]]) -> Any:
        """Catch up, then read."""
        await self._views.freshen()
        return await self._inner.read(body)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Catch up, then fetch."""
        await self._views.freshen()
        return await self._inner.fetch(sql, params)


class Views:
    """Views over one store: queries, and the runner that keeps them current.

    With ``fresh`` (the default of :func:`open_views`) every ``query`` first
    brings the views up to the log's head (or, while :meth:`follow` runs, waits
    until they reach it); with ``fresh=False`` queries read the views as far as
    :meth:`catch_up` or :meth:`follow` brought them, without touching the log.
    """

    def __init__(
        self,
        store: EventStore,
        views_store: ViewsStore,
        runner: ProjectionRunner,
        *,
        as_of: int | None = None,
        fresh: bool = False,
        fresh_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.views_store = views_store
        self.runner = runner
        #: The log position the views were replayed to, for views opened "as of"; else None.
        self.as_of = as_of
        #: Whether queries catch up to the head first (never for views opened "as of").
        self.fresh = fresh and as_of is None
        self._fresh_timeout = fresh_timeout
        self._catching_up = anyio.Lock()
        self.query = Queries(_FreshReads(views_store, self) if self.fresh else views_store, store)

    async def freshen(self) -> int:
        """Bring the views up to the log's head now (what a fresh query does first).

        Concurrent callers share one catch-up; while :meth:`follow` runs this waits
        for it instead. A projection that has failed is left where it stopped (its
        status says why) and the others are still brought up. Returns the head.
        """
        if self.as_of is not None:
            return self.as_of
        head = await self.store.head()
        if self.runner.following:
            # A failed projection stays behind (its status says why); the others reach the head.
            with contextlib.suppress(ProjectionFailedError):
                await self.runner.wait_for(head, self._fresh_timeout)
            return head
        async with self._catching_up:
            return await self.runner.catch_up()

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
        """Each projection's position, lag, version, state and last error."""
        return await self.runner.status()


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
    fresh: bool = True,
) -> AsyncIterator[Views]:
    """Open the live views of ``store`` (by default ``views.db`` beside its log).

    Projections whose code version differs from the stored one are rebuilt
    blue/green on opening (``auto_rebuild``), reporting through ``progress``.
    A views file that cannot be read is set aside and rebuilt from the log.
    ``fresh`` (default): every ``views.query`` read first catches the views up to
    the log's head, so it sees every event appended before it was called;
    ``fresh=False`` reads the views as they are, for a process that keeps them
    current itself (``views.follow()``) or wants no log reads on the query path.
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
        yield Views(store, views_store, runner, fresh=fresh)
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
