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
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from eventstore import EventStore
from eventstore.logs import get_logger
from eventstore.store_factories import PostgresViewsDatabase, ViewsDatabase, factory_for

from .definition import Projection
from .errors import (
    ProjectionFailedError,
    QueryError,
    ViewsCorruptError,
    ViewsReadOnlyError,
    ViewsStoreError,
)
from .queries import Queries
from .runner import (
    ProgressCallback,
    ProjectionFault,
    ProjectionRunner,
    ProjectionStatus,
    default_projections,
)
from .snapshots import ViewSnapshots
from .transactions import Tx
from .views_store import VIEWS_FILE, SQLiteViewsStore, ViewsStore

__all__ = ["Views", "live_views_store", "open_views", "views_as_of", "views_store_for"]

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


#: Replaces views that turned out unreadable (or unwritable): the new store and runner.
_Recover = Callable[[ViewsStoreError], Awaitable[tuple[ViewsStore, ProjectionRunner]]]


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
        recover: _Recover | None = None,
    ) -> None:
        self.store = store
        self.views_store = views_store
        self.runner = runner
        self._recover_with = recover
        #: The log position the views were replayed to, for views opened "as of"; else None.
        self.as_of = as_of
        #: Whether queries catch up to the head first (never for views opened "as of").
        self.fresh = fresh and as_of is None
        self._fresh_timeout = fresh_timeout
        self._catching_up = anyio.Lock()
        # Reads heal a corrupt file first (innermost), then fresh reads catch up before each.
        reads: ViewsStore = views_store if recover is None else _HealingViewsStore(self)
        self.query = Queries(_FreshReads(reads, self) if self.fresh else reads, store)
        #: Why the live views are built in memory (their file cannot be written), else None.
        self.memory_fallback: str | None = None

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
            return await self.catch_up()

    async def _recover(self, error: ViewsStoreError) -> None:
        """Replace views found corrupt (set aside) or unwritable (in memory), and catch up."""
        if self._recover_with is None:
            raise error
        self.views_store, self.runner = await self._recover_with(error)
        if isinstance(error, ViewsReadOnlyError):
            self.memory_fallback = str(error)
        await self.runner.catch_up()

    async def catch_up(self, *, progress: ProgressCallback | None = None) -> int:
        """Bring every projection up to the log's head; return that position."""
        if self.as_of is not None:
            return self.as_of
        try:
            return await self.runner.catch_up(progress=progress)
        except (ViewsCorruptError, ViewsReadOnlyError) as exc:
            if self._recover_with is None:
                raise
            self.views_store, self.runner = await self._recover_with(exc)
            if isinstance(exc, ViewsReadOnlyError):
                self.memory_fallback = str(exc)
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
        try:
            await self.runner.rebuild(name, progress=progress)
        except (ViewsCorruptError, ViewsReadOnlyError) as exc:
            if self._recover_with is None:
                raise
            # The replacement views are built from the log from scratch: a rebuild.
            await self._recover(exc)

    async def status(self) -> list[ProjectionStatus]:
        """Each projection's position, lag, version, state, last error and faults."""
        return await self.runner.status()

    async def faults(self) -> list[ProjectionFault]:
        """The events the projections could not apply (and went past), in log order."""
        return await self.runner.faults()


class _HealingViewsStore:
    """The live views for queries: a read that finds the file corrupt has the views
    set aside and rebuilt from the log, then runs once more on the new ones."""

    def __init__(self, views: Views) -> None:
        self._views = views

    @property
    def location(self) -> str:
        """Where the views live now."""
        return self._views.views_store.location

    @location.setter
    def location(self, value: str) -> None:
        # Part of the ViewsStore protocol; where the views live follows the live store.
        pass

    async def open(self) -> None:
        """Opened by open_views."""
        await self._views.views_store.open()

    async def close(self) -> None:
        """Closed by open_views."""
        await self._views.views_store.close()

    async def transact(self, body: Callable[[], Tx[Any]]) -> Any:
        """Delegate: the runner writes, not the queries."""
        return await self._views.views_store.transact(body)

    async def read(self, body: Callable[[], Tx[Any]]) -> Any:
        """One read snapshot; rebuilt and run again once if the file is corrupt."""
        try:
            return await self._views.views_store.read(body)
        except ViewsCorruptError as exc:
            await self._views._recover(exc)
            return await self._views.views_store.read(body)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read query; rebuilt and run again once if the file is corrupt."""
        try:
            return await self._views.views_store.fetch(sql, params)
        except ViewsCorruptError as exc:
            await self._views._recover(exc)
            return await self._views.views_store.fetch(sql, params)


def views_store_for(database: ViewsDatabase) -> ViewsStore:
    """The views store a backend's factory describes (see :mod:`eventstore.store_factories`)."""
    if isinstance(database, PostgresViewsDatabase):
        from .postgres_views_store import PostgresViewsStore

        return PostgresViewsStore(
            database.dsn, database.schema, server_settings=dict(database.server_settings)
        )
    return SQLiteViewsStore(database.path, synchronous=database.synchronous)


def live_views_store(store: EventStore, path: Path | None = None) -> ViewsStore:
    """Where a store's live views go: ``views.db`` beside a SQLite log, schema ``views`` on
    PostgreSQL (as the store's factory says), or the SQLite file ``path``."""
    if path is not None:
        return SQLiteViewsStore(path)
    return views_store_for(factory_for(store.location).views_database(store.location))


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
    A views file that is unreadable (corrupt, or not a database) is set aside and
    rebuilt from the log, also when a later catch-up or query finds a corrupt
    page; a views file that cannot be written (read-only storage) is replaced by
    views built in memory. A full disk or a lock held elsewhere is an error
    (``ViewsFullError``, ``ViewsBusyError``): the file is never moved for that.
        ``fresh`` (default): every ``views.query`` read first catches the views up to
    the log's head, so it sees every event appended before it was called;
    ``fresh=False`` reads the views as they are, for a process that keeps them
    current itself (``views.follow()``) or wants no log reads on the query path.
    """
    views_store = SQLiteViewsStore(None) if memory else live_views_store(store, path)
    file_path = views_store.path if isinstance(views_store, SQLiteViewsStore) else None
    current: list[ViewsStore] = [views_store]

    async def prepared(target: ViewsStore) -> ProjectionRunner:
        path = target.path if isinstance(target, SQLiteViewsStore) else None
        snapshots = ViewSnapshots(path) if path is not None else None
        runner = ProjectionRunner(store, target, projections, snapshots=snapshots)
        await runner.prepare(auto_rebuild=auto_rebuild, progress=progress)
        return runner

    async def recover(error: ViewsStoreError) -> tuple[ViewsStore, ProjectionRunner]:
        if file_path is None or not isinstance(error, ViewsCorruptError | ViewsReadOnlyError):
            raise error
        await current[0].close()
        if isinstance(error, ViewsCorruptError):
            current[0] = await _set_aside_and_reopen(file_path, error)
        else:
            log.info("views_in_memory", path=str(file_path), reason=str(error))
            current[0] = SQLiteViewsStore(None)
            await current[0].open()
        return current[0], await prepared(current[0])

    try:
        fallback: str | None = None
        try:
            await views_store.open()
            runner = await prepared(views_store)
        except (ViewsCorruptError, ViewsReadOnlyError) as exc:
            _, runner = await recover(exc)
            fallback = str(exc) if isinstance(exc, ViewsReadOnlyError) else None
        views = Views(
            store,
            current[0],
            runner,
            fresh=fresh,
            recover=recover if file_path is not None else None,
        )
        views.memory_fallback = fallback
        yield views
    finally:
        await current[0].close()


def _move_files(path: Path, aside: Path | None) -> None:
    """Move (or with ``aside`` None, delete) a SQLite file and its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if aside is None:
            source.unlink(missing_ok=True)
        elif source.exists():
            source.rename(Path(f"{aside}{suffix}"))


def _set_aside(path: Path) -> Path | None:
    """Move an unreadable views file (and its -wal, -shm) to a name no one has used.

    The name is claimed with a hard link, which fails if it exists, so a second
    set-aside in the same second (or by another process) never overwrites the
    first. None if the file is already gone (another process set it aside).
    """
    base = f"{path.name}.unreadable-{int(time.time())}"
    for attempt in itertools.count(1):
        aside = path.with_name(base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.link(path, aside)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        except OSError:  # no hard links here: rename, after a best-effort check
            if aside.exists():
                continue
            path.rename(aside)
            break
        path.unlink()
        break
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").rename(Path(f"{aside}{suffix}"))
    return aside


async def _set_aside_and_reopen(path: Path, error: Exception) -> SQLiteViewsStore:
    aside = await anyio.to_thread.run_sync(_set_aside, path)
    log.warning("views_unreadable", path=str(path), error=str(error), moved_to=str(aside))
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
    made_into = False
    if into is not None:
        made_into = not await anyio.Path(into).exists()
        await anyio.Path(into).mkdir(parents=True, exist_ok=True)
        scratch_path: Path | None = into / VIEWS_FILE
        await anyio.to_thread.run_sync(_move_files, into / VIEWS_FILE, None)
    else:
        scratch_path = None
    scratch = SQLiteViewsStore(scratch_path)
    try:
        try:
            await scratch.open()
            await _start_from_snapshot(store, scratch, target, projections)
            runner = ProjectionRunner(store, scratch, projections)
            # One look, then dropped: no index builds, unless kept for inspection.
            runner.build_indexes = scratch_path is not None
            await runner.prepare(auto_rebuild=False)
            await runner.catch_up(to_position=target, progress=progress)
            yield Views(store, scratch, runner, as_of=target)
        finally:
            await scratch.close()
    except BaseException:
        # A replay that did not finish (a full disk, Ctrl-C...) leaves nothing behind.
        if scratch_path is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove_scratch, scratch_path, made_into)
        raise


async def _start_from_snapshot(
    store: EventStore,
    scratch: SQLiteViewsStore,
    target: int,
    projections: Sequence[Projection] | None,
) -> None:
    """Fill ``scratch`` from the live views' newest usable snapshot at or before ``target``.

    The replay then starts where the snapshot stands (its checkpoints came with
    it) instead of at position 1. Without a usable snapshot (PostgreSQL views,
    none taken yet, other projection versions) the scratch stays empty.
    """
    live = live_views_store(store)
    if not isinstance(live, SQLiteViewsStore) or live.path is None:
        return
    snapshots = ViewSnapshots(live.path)
    versions = {p.name: p.version for p in (projections or default_projections())}
    info = await store.info()
    log_id = str(info.get("store_id") or "")
    best = await anyio.to_thread.run_sync(snapshots.best, target, versions, log_id)
    if best is not None:
        await scratch.restore(best)
        log.info("as_of_from_snapshot", snapshot=str(best), position=target)


def _remove_scratch(path: Path, remove_directory: bool) -> None:
    _move_files(path, None)
    Path(f"{path}-journal").unlink(missing_ok=True)
    if remove_directory:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only if empty: never another file of the user's
