"""Where the views live: a SQLite file beside the log, or an in-memory scratch store.

The views file is separate from the log (``views.db`` in the store directory),
so appends never wait on view writes, and the views can be deleted at any time:
they come back from the log. It runs in WAL mode with ``synchronous=NORMAL``:
a power cut may lose the last view transactions, but rows and checkpoint go
together, so the runner simply re-applies them.

Writes run the generator transactions of :mod:`projections.transactions` as one
call in a worker thread (``BEGIN IMMEDIATE`` ... ``COMMIT``): one thread hop per
batch. Reads use their own connection, so queries run beside a rebuild and see
either the old generation or the new one.

Short reads run on the event loop itself. Handing a query to a thread and
back costs two cross-thread wake-ups, about 0.1 ms on a small VM: as much as
a 50-row indexed query. So a file-backed store first runs each read on a
loop-side connection with a time budget (:data:`INLINE_BUDGET_S`), enforced
by SQLite's progress handler; a read that runs over, or meets a lock, is
interrupted, rolled back and run again on the read thread. The loop is thus
never blocked for longer than the budget, and small reads skip the hop.

Size: one class (~740 lines): the writer thread, the inline reads, the
coalesced writes, and the background checkpoints and snapshots all share one
connection's life and its locking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
import msgspec

from eventstore import store_factories
from eventstore.interruptible import close_when_idle, run_sync_interruptibly
from eventstore.logs import get_logger
from eventstore.sqlite_errors import is_disk_full_oserror, sqlite_error_kind
from eventstore.wal_checkpoints import WalCheckpointer

from .errors import (
    ViewsBusyError,
    ViewsCorruptError,
    ViewsFullError,
    ViewsReadOnlyError,
    ViewsStoreError,
)
from .row_ops import Layout, to_sql
from .snapshots import SNAPSHOT_URI_PARAMETERS, SnapshotStopped, ViewSnapshots
from .transaction_driver import drive
from .transactions import (
    STATE_DDL,
    ApplyOps,
    Execute,
    ExecuteMany,
    Fetch,
    LoadRows,
    OpError,
    Request,
    Script,
    Tx,
    WriteMany,
    WriteRows,
)

__all__ = [
    "INLINE_BUDGET_S",
    "VIEWS_FILE",
    "VIEWS_SCHEMA_VERSION",
    "SQLiteViewsStore",
    "ViewsStore",
]

log = get_logger("projections.views")

#: The views file's name in the store directory.
VIEWS_FILE = store_factories.VIEWS_FILE
#: The version of the views store's own tables (``projection_state``, ``views_meta``).
VIEWS_SCHEMA_VERSION = 1
#: How long a read may hold the event loop before it is moved to the read thread.
INLINE_BUDGET_S = 0.001
#: SQLite virtual-machine steps between two budget checks (a check costs ~0.1 us).
_PROGRESS_STEPS = 1_000
#: Rows written between two background checkpoints: about the 4 MB of SQLite's own
#: automatic checkpoint (1,000 pages), at a few hundred bytes a row and its keys.
CHECKPOINT_ROWS = 10_000
#: The page size of a new views file (SQLite's default is 4 KiB). A catch-up
#: writes every view row into B-trees keyed by random UUIDs; with 16 KiB pages
#: those trees have a quarter of the pages to find, split and write, and a
#: 1,000,000-event catch-up took 14.8 to 16.8 s against 19.0 (docs/benchmarks.md).
PAGE_SIZE = 16384
#: The niceness of the thread that copies snapshots (19: the lowest priority).
SNAPSHOT_NICENESS = 10


#: Errors of the file or the machine, not of one event's SQL: they fail the whole
#: transaction and are never recorded against an event or a projection.
_ENVIRONMENT_KINDS = frozenset(
    {"full", "corrupt", "notadb", "readonly", "cantopen", "busy", "ioerr"}
)


def views_error(location: str, exc: BaseException, doing: str = "") -> ViewsStoreError:
    """A SQLite (or OS) error on the views as the views store's own, by its kind."""
    prefix = f"{doing} the views at {location}" if doing else f"the views at {location}"
    if isinstance(exc, OSError):
        if is_disk_full_oserror(exc):
            return ViewsFullError(f"{prefix}: the disk is full ({exc.strerror})")
        return ViewsReadOnlyError(f"{prefix}: {exc.strerror or exc}")
    near = None if location == ":memory:" else Path(location)
    kind = sqlite_error_kind(exc, near=near)
    if kind == "full":
        return ViewsFullError(f"{prefix}: the disk is full")
    if kind in ("corrupt", "notadb"):
        return ViewsCorruptError(f"{prefix} are unreadable: {exc}")
    if kind in ("readonly", "cantopen"):
        return ViewsReadOnlyError(f"{prefix} cannot be written: {exc}")
    if kind == "busy":
        return ViewsBusyError(f"{prefix}: {exc}")
    return ViewsStoreError(f"{prefix}: {exc}")


def _statement_error(exc: BaseException) -> bool:
    """Whether a SQLite error is the statement's own, to be recorded against its event.

    Not an interrupt (a close or cancellation: the batch is rolled back whole),
    nor a fault of the file or the machine (:data:`_ENVIRONMENT_KINDS`).
    """
    if not isinstance(exc, sqlite3.Error):
        return False
    kind = sqlite_error_kind(exc)
    return kind != "interrupt" and kind not in _ENVIRONMENT_KINDS


def _fetch_on(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _fetch_request(conn: sqlite3.Connection, request: Request) -> list[tuple[Any, ...]]:
    assert isinstance(request, Fetch)  # drive(read_only=True) lets only fetches through
    return _fetch_on(conn, request.sql, request.params)


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: a thread is a task of its own).

    A snapshot's copy runs beside the catch-up on a machine of few cores: it
    yields to the writer and to the Python that prepares the next chunk, and
    copies when a core is free.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SNAPSHOT_NICENESS)


class _Stopped(Exception):
    """A transaction stopped because its caller was cancelled: rolled back, never reported."""


class _Overran(Exception):
    """An inline read ran over its budget or met a lock: run it on the read thread."""


class ViewsStore(Protocol):
    """A place for views: runs transactions, answers read queries."""

    #: Where the views live, for messages.
    location: str

    async def open(self) -> None:
        """Connect and create the state tables."""
        ...

    async def close(self) -> None:
        """Release every connection; idempotent."""
        ...

    async def transact(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run one generator transaction under the write lock; commit or roll back."""
        ...

    async def read(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run a generator of Fetch requests in one read snapshot (never blocks the writer)."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (``?`` placeholders) and return its rows."""
        ...


_json_text = msgspec.json.Encoder().encode


def _sqlite_bulk_sql(kind: str, table: str, shape: Layout) -> str:
    """The statement a coalesced write (or its load) runs on SQLite, by kind."""
    columns = ", ".join(shape.columns)
    marks = ", ".join("?" for _ in shape.columns)
    where = " AND ".join(f"{column} = ?" for column in shape.key)
    if kind == "load":
        if len(shape.key) == 1:
            return (
                f"SELECT {columns} FROM {table} WHERE {shape.key[0]} IN "
                "(SELECT value FROM json_each(?))"
            )
        picked = ", ".join(f"value ->> {number}" for number in range(len(shape.key)))
        return (
            f"SELECT {columns} FROM {table} WHERE ({', '.join(shape.key)}) IN "
            f"(SELECT {picked} FROM json_each(?))"
        )
    if kind == "insert":
        return f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    if kind == "update":
        changed = [c for c in shape.columns if c not in shape.key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in changed)
            if changed
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(shape.key)}) {action}"
        )
    assert kind == "delete"
    return f"DELETE FROM {table} WHERE {where}"


def _render(sql: str, tables: tuple[tuple[str, str], ...], cache: dict[Any, str]) -> str:
    key = (sql, tables)
    rendered = cache.get(key)
    if rendered is None:
        rendered = sql.format_map(dict(tables))
        cache[key] = rendered
    return rendered


class SQLiteViewsStore:
    """Views in a SQLite file (``path``), or in memory when ``path`` is None."""

    #: Whether a runner coalesces a chunk's row ops before writing them
    #: (:mod:`projections.coalesce`). Not on SQLite: an in-process statement by
    #: primary key costs about what interpreting its op in Python costs, and a
    #: catch-up of 1,000,000 events measured 17% more CPU and 71 MB more memory
    #: coalesced (docs/benchmarks.md, issue 16, target 1). Each op then runs as
    #: its statement, rendered as it runs.
    coalesces = False
    #: Whether a runner folds the run lifecycle projections' events straight into
    #: rows at a batch's first try (:mod:`projections.fold`): a few
    #: ``executemany`` a chunk instead of a statement per op.
    folds = True

    def __init__(
        self, path: Path | None, *, busy_timeout: float = 30.0, synchronous: str = "NORMAL"
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self.location = str(path) if path is not None else ":memory:"
        self._busy_timeout = busy_timeout
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # The loop-side reader (file-backed stores only); see the module docstring.
        self._inline: sqlite3.Connection | None = None
        self._inline_deadline = 0.0
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)
        # Held by a thread while it runs SQLite on the connection; closing takes it,
        # so a cancelled caller's clean-up never closes a connection under a statement.
        self._writer_busy = threading.Lock()
        self._reader_busy = threading.Lock()
        # Reads get a thread of their own: handing a short query to a waiting
        # dedicated thread costs a third of what a pooled worker hop costs, and a
        # list query is mostly that hop.
        self._read_executor = concurrent.futures.ThreadPoolExecutor(1, "metaledger-views-read")
        # Checkpoints beside the commits, not inside them (a file-backed store):
        # the writer's automatic checkpoint is off, and a PASSIVE checkpoint runs
        # on a thread and connection of its own once CHECKPOINT_ROWS rows were
        # written. Inside the COMMIT that crossed 1,000 WAL pages it copied a whole
        # chunk's pages into the file and fsynced while nothing else could run on
        # the writer: about 4 s of a 1,000,000-event catch-up.
        self._checkpoint_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpoint_running: concurrent.futures.Future[None] | None = None
        self._checkpoints: WalCheckpointer | None = None
        self._changes_at_checkpoint = 0
        # Snapshots for as-of beside the writes, one at a time (start_snapshot).
        self._snapshot_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._snapshot_running: concurrent.futures.Future[int | None] | None = None
        self._snapshot_stop = threading.Event()
        self._render_cache: dict[Any, str] = {}

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the views file, or the in-memory store."""
        await anyio.to_thread.run_sync(self._open_sync)

    def _connect(self) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        conn = sqlite3.connect(
            target, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        return conn

    def _open_sync(self) -> None:
        if self.path is not None and not self.path.exists():
            try:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise views_error(self.location, exc, "cannot create") from exc
        writer: sqlite3.Connection | None = None
        try:
            writer = self._connect()
            # Only a new (empty) file takes it; an existing file keeps its pages.
            writer.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            if self.path is not None:
                self._switch_to_wal(writer)
                writer.execute(f"PRAGMA synchronous = {self._synchronous}")
                writer.execute("PRAGMA wal_autocheckpoint = 0")  # see __init__
            # View index pages are touched at random (UUID keys): a larger cache
            # keeps catch-up off the system-call path.
            writer.execute("PRAGMA cache_size = -65536")
            # Sorts for index builds and the swap's statement journal spill to
            # temporary files: in memory, a rebuild of 1,100,142 events grew to
            # 437 MB at its swaps (254 MB with files, and no slower).
            writer.execute("PRAGMA temp_store = FILE")
            for statement in STATE_DDL:
                writer.execute(statement)
        except sqlite3.Error as exc:
            if writer is not None:
                writer.close()
            raise views_error(self.location, exc, "cannot open") from exc
        self._writer = writer
        # An in-memory database exists once per connection: reads share the writer.
        self._reader = self._connect() if self.path is not None else writer
        if self.path is not None:
            self._reader.execute("PRAGMA query_only = 1")
            self._inline = self._connect_inline()
            self._checkpoint_executor = concurrent.futures.ThreadPoolExecutor(
                1, "metaledger-views-checkpoint"
            )
            self._checkpoints = WalCheckpointer(self._connect_checkpointer, self._checkpoint_failed)
        if self._reader is writer:
            self._read_limiter = self._write_limiter
            self._reader_busy = self._writer_busy

    def _connect_inline(self) -> sqlite3.Connection:
        assert self.path is not None
        conn = sqlite3.connect(
            str(self.path), timeout=0, isolation_level=None, check_same_thread=False
        )
        # Never wait on a lock on the loop: SQLITE_BUSY sends the read to the thread.
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA query_only = 1")
        conn.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
        return conn

    def _over_budget(self) -> bool:
        # Non-zero interrupts the running statement (sqlite3.OperationalError).
        return time.perf_counter() > self._inline_deadline

    def _switch_to_wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if sqlite_error_kind(exc) != "busy" or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    async def close(self) -> None:
        """Close the connections and stop the read thread; idempotent, shielded.

        A caller cancelled mid-transaction (Ctrl-C) may get here while a worker
        thread still runs on a connection: its statement is interrupted (rolled
        back) and the connection closed only once the thread let go of it. An
        idle connection closes normally, with its checkpoint.
        """
        reader, self._reader = self._reader, None
        writer, self._writer = self._writer, None
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()  # used on the event loop only: nothing runs on it now
        with anyio.CancelScope(shield=True):
            # First: a copy's read transaction would keep the writer's close from
            # checkpointing and removing the WAL.
            await self._stop_snapshots()
            await self._stop_checkpoints()
            if reader is not None and reader is not writer:
                await close_when_idle(reader, self._reader_busy, interrupt=True)
            if writer is not None:
                await close_when_idle(writer, self._writer_busy, interrupt=True)
        self._read_executor.shutdown(wait=False)

    # -- writing ---------------------------------------------------------------

    async def transact(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run one generator transaction in the writer's thread."""
        conn = self._writer
        if conn is None:
            raise ViewsStoreError(f"the views at {self.location} are closed")
        stop = threading.Event()

        def interrupt() -> None:
            # Both: SQLite's interrupt only reaches a statement that is running,
            # and between two statements none is.
            stop.set()
            conn.interrupt()

        async with self._write_limiter:
            # Cancelled (Ctrl-C): the batch is interrupted and rolled back whole.
            return await run_sync_interruptibly(
                self._transact_sync, body, stop, interrupt=interrupt
            )

    def _transact_sync(self, body: Callable[[], Tx[Any]], stop: threading.Event) -> Any:
        with self._writer_busy:
            return self._transact_locked(body, stop)

    def _transact_locked(self, body: Callable[[], Tx[Any]], stop: threading.Event) -> Any:
        conn = self._writer
        if conn is None:
            raise ViewsStoreError(f"the views at {self.location} are closed")
        if self._checkpoints is not None:
            self._checkpoints.finish(conn)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise views_error(self.location, exc) from exc
        try:
            value = drive(
                body, lambda request: self._perform(conn, request, stop), op_error=_statement_error
            )
        except BaseException as exc:
            self._rollback(conn)
            if isinstance(exc, sqlite3.Error):
                raise views_error(self.location, exc) from exc
            if isinstance(exc, OpError):
                raise ViewsStoreError(f"{self.location}: {exc}") from exc
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise views_error(self.location, exc) from exc
        self._checkpoint_if_due(conn)
        return value

    # -- checkpoints -------------------------------------------------------------

    def _checkpoint_if_due(self, conn: sqlite3.Connection) -> None:
        """Start a background checkpoint once enough rows were written (see ``__init__``)."""
        executor = self._checkpoint_executor
        if executor is None:
            return
        changes = conn.total_changes
        if changes - self._changes_at_checkpoint < CHECKPOINT_ROWS:
            return
        running = self._checkpoint_running
        if running is not None and not running.done():
            return  # the next commit asks again
        self._changes_at_checkpoint = changes
        self._checkpoint_running = executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint on a connection of its own (:mod:`eventstore.wal_checkpoints`)."""
        checkpoints = self._checkpoints
        if checkpoints is not None and self._writer is not None:
            checkpoints.run()

    def _connect_checkpointer(self) -> sqlite3.Connection:
        return sqlite3.connect(
            str(self.path), timeout=0, isolation_level=None, check_same_thread=False
        )

    def _checkpoint_failed(self, exc: sqlite3.Error) -> None:
        if self._writer is not None:  # not the interrupt of a close
            log.warning("views_checkpoint_failed", views=self.location, error=str(exc))

    async def _stop_checkpoints(self) -> None:
        """Interrupt a running checkpoint, wait for its thread, close its connection."""
        executor, self._checkpoint_executor = self._checkpoint_executor, None
        if executor is None:
            return
        checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            checkpoints.interrupt()
        await anyio.to_thread.run_sync(executor.shutdown)
        if checkpoints is not None:
            checkpoints.close()

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # A full disk or a corrupt page may already have rolled SQLite back.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _perform(self, conn: sqlite3.Connection, request: Any, stop: threading.Event) -> Any:
        if stop.is_set():
            raise _Stopped
        if isinstance(request, ApplyOps):
            return self._apply_ops(conn, request, stop)
        if isinstance(request, Fetch):
            return conn.execute(request.sql, request.params).fetchall()
        if isinstance(request, LoadRows):
            return self._load_rows(conn, request)
        if isinstance(request, WriteMany):
            for write in request.writes:
                self._write_rows(conn, write)
            return None
        if isinstance(request, Script):
            for statement in request.statements:
                conn.execute(statement)
            return None
        if isinstance(request, ExecuteMany):
            conn.executemany(request.sql, request.rows)
            return None
        assert isinstance(request, Execute)
        return conn.execute(request.sql, request.params).rowcount

    def _bulk_sql(self, kind: str, table: str, shape: Layout) -> str:
        key = (kind, table, shape.columns, shape.key)
        sql = self._render_cache.get(key)
        if sql is None:
            sql = self._render_cache[key] = _sqlite_bulk_sql(kind, table, shape)
        return sql

    def _load_rows(self, conn: sqlite3.Connection, request: LoadRows) -> list[tuple[Any, ...]]:
        """The rows at the request's keys: one statement, the keys as one JSON array."""
        sql = self._bulk_sql("load", request.table, request.layout)
        return conn.execute(sql, (_json_text(request.keys),)).fetchall()

    def _write_rows(self, conn: sqlite3.Connection, request: WriteRows) -> None:
        """A table's coalesced rows: executemany of one statement per kind of change."""
        shape, table = request.layout, request.table
        if request.deletes:
            conn.executemany(self._bulk_sql("delete", table, shape), request.deletes)
        if request.updates:
            conn.executemany(self._bulk_sql("update", table, shape), request.updates)
        if request.inserts:
            conn.executemany(self._bulk_sql("insert", table, shape), request.inserts)

    def _apply_ops(
        self, conn: sqlite3.Connection, request: ApplyOps, stop: threading.Event
    ) -> tuple[int, str] | None:
        cache = self._render_cache
        tables = request.tables
        definitions = request.definitions or {}
        execute = conn.execute
        for index, ops in enumerate(request.events):
            if stop.is_set():
                raise _Stopped
            try:
                for op in ops:
                    sql, params = op if type(op) is tuple else to_sql(op, definitions)  # type: ignore[arg-type]
                    execute(_render(sql, tables, cache), params)
            except sqlite3.Error as exc:
                if not _statement_error(exc):
                    raise  # never blamed on the event: see _statement_error
                return index, str(exc)
        return None

    # -- snapshots ---------------------------------------------------------------

    def start_snapshot(
        self, snapshots: ViewSnapshots, versions: Mapping[str, int] | None = None
    ) -> bool:
        """Start leaving a snapshot of these views beside the writes; whether it started.

        The copy runs on a thread and connection of its own, in one read
        transaction (:meth:`ViewSnapshots.take`): transactions go on meanwhile.
        At most one copy runs: while one does, this starts none (the caller
        asks again later). It is kept only if every projection of
        ``versions`` stands live at one position in it; a failure only logs a
        warning (a snapshot is an optimisation); :meth:`close` stops it.
        """
        if self._writer is None or self.path is None:
            return False
        running = self._snapshot_running
        if running is not None and not running.done():
            return False
        if self._snapshot_executor is None:
            self._snapshot_executor = concurrent.futures.ThreadPoolExecutor(
                1, "metaledger-views-snapshot", initializer=_lower_priority
            )
            self._snapshot_stop = threading.Event()  # set by the close that ends this thread
        self._snapshot_running = self._snapshot_executor.submit(
            self._snapshot, snapshots, versions, self._snapshot_stop
        )
        return True

    async def wait_snapshot(self) -> int | None:
        """Wait for the snapshot under way, if any: its position (None: none kept)."""
        running = self._snapshot_running
        if running is None:
            return None
        # Shielded: a waiter that is cancelled leaves the copy to its store.
        return await asyncio.shield(asyncio.wrap_future(running))

    async def take_snapshot(
        self, snapshots: ViewSnapshots, versions: Mapping[str, int] | None = None
    ) -> int | None:
        """Leave a snapshot of these views and wait for it; its position (None: none kept)."""
        await self.wait_snapshot()
        if not self.start_snapshot(snapshots, versions):
            return None
        return await self.wait_snapshot()

    def _snapshot(
        self,
        snapshots: ViewSnapshots,
        versions: Mapping[str, int] | None,
        stop: threading.Event,
    ) -> int | None:
        """On the snapshot thread: one copy, on a connection opened and closed for it."""
        try:
            conn = self._connect_checkpointer()
            try:
                return snapshots.take(conn, versions, stop=stop)
            finally:
                conn.close()
        except SnapshotStopped:
            return None
        except Exception as exc:
            # A snapshot is an optimisation: the views are fine without it, and
            # nobody waits for this one to hear of its error.
            log.warning("views_snapshot_failed", views=self.location, error=str(exc))
            return None

    async def _stop_snapshots(self) -> None:
        """Stop a copy under way (its file is removed) and wait for its thread."""
        executor, self._snapshot_executor = self._snapshot_executor, None
        self._snapshot_stop.set()
        if executor is not None:
            await anyio.to_thread.run_sync(executor.shutdown)

    async def restore(self, snapshot: Path) -> None:
        """Replace this (scratch) store's content with a snapshot's, page for page."""
        conn = self._writer
        if conn is None:
            raise ViewsStoreError(f"the views at {self.location} are closed")

        def copy() -> None:
            with self._writer_busy:
                source = sqlite3.connect(f"file:{snapshot}?{SNAPSHOT_URI_PARAMETERS}", uri=True)
                try:
                    source.backup(conn)
                finally:
                    source.close()

        async with self._write_limiter:
            try:
                await anyio.to_thread.run_sync(copy)
            except sqlite3.Error as exc:
                raise views_error(self.location, exc, "cannot restore a snapshot") from exc

    # -- reading ---------------------------------------------------------------

    async def read(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run a generator of Fetch requests in one read transaction: one consistent snapshot."""
        if self._inline is not None:
            try:
                return self._inline_run(self._read_on, self._inline, body)
            except _Overran:
                pass
        async with self._read_limiter:
            self._check_open()
            return await asyncio.get_running_loop().run_in_executor(
                self._read_executor, self._read_sync, body
            )

    def _read_sync(self, body: Callable[[], Tx[Any]]) -> Any:
        with self._reader_busy:
            conn = self._reader
            if conn is None:
                raise ViewsStoreError(f"the views at {self.location} are closed")
            try:
                return self._read_on(conn, body)
            except sqlite3.Error as exc:
                raise views_error(self.location, exc) from exc

    @staticmethod
    def _read_on(conn: sqlite3.Connection, body: Callable[[], Tx[Any]]) -> Any:
        conn.execute("BEGIN")
        try:
            return drive(body, lambda request: _fetch_request(conn, request), read_only=True)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read query on the reader connection (one statement: its own snapshot)."""
        params = tuple(params)
        if self._inline is not None:
            try:
                rows: list[tuple[Any, ...]] = self._inline_run(_fetch_on, self._inline, sql, params)
                return rows
            except _Overran:
                pass
        async with self._read_limiter:
            self._check_open()
            return await asyncio.get_running_loop().run_in_executor(
                self._read_executor, self._fetch_sync, sql, params
            )

    def _check_open(self) -> None:
        # The read thread is shut down on close: fail with our error, not the pool's.
        if self._reader is None:
            raise ViewsStoreError(f"the views at {self.location} are closed")

    def _inline_run(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)`` on the loop, within the budget, or raise _Overran."""
        self._inline_deadline = time.perf_counter() + INLINE_BUDGET_S
        try:
            return work(*args)
        except sqlite3.Error as exc:
            # Interrupted by the budget, busy, or a real error: the read thread runs
            # it again and reports a real error properly.
            conn = self._inline
            if conn is not None and conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._inline = None  # unusable: every read takes the thread
                    conn.close()
            raise _Overran from exc

    def _fetch_sync(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._reader_busy:
            conn = self._reader
            if conn is None:
                raise ViewsStoreError(f"the views at {self.location} are closed")
            try:
                return _fetch_on(conn, sql, params)
            except sqlite3.Error as exc:
                raise views_error(self.location, exc) from exc
