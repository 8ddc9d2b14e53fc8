"""The SQLite backend: the log in ``ledger.db`` (WAL) in the store's directory.

Writes: one stdlib ``sqlite3`` connection, driven by the group-commit writer,
runs each batch's whole transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) as one
call in a worker thread: one thread hop per batch instead of one per statement.
``BEGIN IMMEDIATE`` takes SQLite's single write lock up front, so positions are
allocated in commit order even with several processes writing one file; the busy
timeout and a bounded number of retries turn a long wait into StoreBusyError.

Reads: an aiosqlite connection. WAL lets them run beside a writer; each chunk is
its own short read transaction, fetched by position (keyset), so a reader never
holds a snapshot open and never sees half a transaction.

Size: one ``Backend`` over one file, with its opening checks (foreign, truncated,
newer, read-only files), its write transaction and its reads; they share the
connections and the error translation, so they stay in one module (~870 lines).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import anyio.to_thread

from .backend import SQL_COLUMNS, RowTuple
from .chain import GENESIS_HASH
from .envelope import AppendResult
from .errors import (
    AppendError,
    NotAStoreError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreNotFoundError,
)
from .interruptible import close_when_idle, run_sync_interruptibly
from .logs import get_logger
from .planner import (
    ChainHead,
    ExistingEvent,
    PendingAppend,
    batch_keys,
    plan_batch,
)
from .sqlite_errors import is_disk_full_oserror, sqlite_error_kind
from .wal_checkpoints import WalCheckpointer

__all__ = ["APPLICATION_ID", "LEDGER_FILE", "SCHEMA_VERSION", "SQLiteBackend"]

log = get_logger("eventstore.sqlite")

#: ``PRAGMA application_id`` of a metaledger log ("MLDG"): tells our files from others'.
APPLICATION_ID = 0x4D4C4447
#: The log's file name inside the store directory.
LEDGER_FILE = "ledger.db"
#: The version of the log's tables this release writes.
SCHEMA_VERSION = 1

_SQLITE_HEADER = b"SQLite format 3\x00"
_IN_CHUNK = 500  # bound parameters per IN (...) list, far under SQLite's limit
#: Row bytes committed between two background checkpoints. A row writes about
#: four times its size into the WAL (its page, and a page of each of two indexes
#: keyed by random ids), so this is about SQLite's own automatic checkpoint
#: (1,000 pages of 4 KiB).
CHECKPOINT_BYTES = 1024 * 1024
#: What a row costs the WAL beyond its payload and metadata (ids, index entries).
_ROW_OVERHEAD = 200

_COLUMNS = SQL_COLUMNS
#: What a typed replay needs of a row to decode it (``read_all`` reading lean).
_LEAN_COLUMNS = "position, type, schema_version, data"
#: The same without the position, for a span of positions known to be whole.
_SPAN_COLUMNS = "type, schema_version, data"
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ROW_MARKS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: Largest multi-row INSERT of a commit: 10 parameters a row, far under SQLite's 32,766.
_INSERT_ROWS_MAX = 512
#: The newest version of each of a JSON array of streams, as one JSON object (one row).
_VERSIONS = (
    "SELECT json_group_object(stream_id, version) FROM ("
    " SELECT s.value AS stream_id,"
    " (SELECT stream_version FROM events WHERE stream_id = s.value"
    "  ORDER BY stream_version DESC LIMIT 1) AS version"
    " FROM json_each(?) AS s) WHERE version IS NOT NULL"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    metadata       BLOB    NOT NULL,
    data           BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream_id, stream_version)
);

CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the metaledger log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the metaledger log is append-only'); END;
"""


def _now_us() -> int:
    return time.time_ns() // 1000


def _is_busy(exc: sqlite3.Error) -> bool:
    return sqlite_error_kind(exc) == "busy"


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@functools.cache
def _insert_rows_sql(count: int) -> str:
    return f"INSERT INTO events ({_COLUMNS}) VALUES " + ", ".join([_ROW_MARKS] * count)


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[RowTuple]) -> None:
    """Insert ``rows`` in a few multi-row statements rather than one step a row.

    The committing thread releases the GIL around every ``sqlite3_step`` and
    must win it back from a busy event loop each time (up to the switch
    interval): one step a row made a 20-append commit wait for the GIL some 40
    times. Chunks are powers of two, so few distinct statements are prepared.
    """
    start = 0
    total = len(rows)
    while start < total:
        left = total - start
        size = _INSERT_ROWS_MAX if left >= _INSERT_ROWS_MAX else 1 << (left.bit_length() - 1)
        if size == 1:
            conn.execute(_INSERT, rows[start])
        else:
            params = [value for row in rows[start : start + size] for value in row]
            conn.execute(_insert_rows_sql(size), params)
        start += size


class SQLiteBackend:
    """The log in a SQLite file; see the module docstring for how it stays safe."""

    #: Whether this handle's ``open`` created the store (its first open ever).
    created = False

    def __init__(
        self,
        directory: Path,
        *,
        read_only: bool = False,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        busy_retries: int = 3,
        max_page_count: int | None = None,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.directory = directory
        self.path = directory / LEDGER_FILE
        # SQLAlchemy form: sqlite:////abs/path for an absolute directory.
        self.uri = f"sqlite:///{directory}"
        self.read_only = read_only
        #: Why writes are refused, for the error message.
        self.read_only_reason = f"{directory} is open read-only"
        self.schema_version = SCHEMA_VERSION
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._busy_retries = max(1, busy_retries)
        self._max_page_count = max_page_count
        # On read-only storage SQLite cannot create the -shm file a WAL reader
        # needs: the file is then opened ``immutable`` (no locks, no WAL).
        self._immutable = False
        # A truncated log is read from a copy padded back to its size (see _salvage).
        self._open_path = self.path
        self._salvage_dir: str | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_limiter = anyio.CapacityLimiter(1)
        # Held by the thread running on the writer connection; closing takes it.
        self._writer_busy = threading.Lock()
        self._meta: dict[str, str] = {}
        # Stream versions as of head ``_cache_head``: valid only while nobody
        # else has appended, which the head (read under the write lock) tells.
        self._versions_cache: dict[str, int] = {}
        self._cache_head = -1
        # Checkpoints away from the commit path (see start_background_checkpoints):
        # row bytes committed since the last one, and what runs them.
        self._wal_bytes = 0
        self._checkpoints: WalCheckpointer | None = None

    # -- opening ---------------------------------------------------------------

    async def open(self, *, create: bool) -> None:
        """Open (and if asked, create) the store directory and its log."""
        await anyio.to_thread.run_sync(self._open_sync, create)
        try:
            self._reader = await aiosqlite.connect(
                self._sqlite_uri(read_only=True), uri=True, timeout=self._busy_timeout
            )
            await self._reader.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            await self.close()
            raise self._translate(exc) from exc
        except BaseException:
            await self.close()
            raise

    def _sqlite_uri(self, *, read_only: bool) -> str:
        mode = "ro" if read_only else "rw"
        immutable = "&immutable=1" if self._immutable else ""
        return f"file:{self._open_path}?mode={mode}{immutable}"

    def _open_sync(self, create: bool) -> None:
        try:
            self._open_files(create)
        except BaseException as exc:
            salvage, self._salvage_dir = self._salvage_dir, None
            if salvage is not None:
                shutil.rmtree(salvage, ignore_errors=True)
            if isinstance(exc, PermissionError):
                raise NotAStoreError(
                    f"{self.directory}: permission denied ({exc.strerror}); "
                    "check the owner and mode of the store's directory"
                ) from exc
            if isinstance(exc, OSError) and not isinstance(exc, StoreError):
                raise self._translate_os(exc) from exc
            raise

    def _open_files(self, create: bool) -> None:
        directory, path = self.directory, self.path
        if directory.exists() and not directory.is_dir():
            raise NotAStoreError(f"{directory} is a file, not a metaledger store directory")
        if not path.exists():
            if not create:
                raise StoreNotFoundError(
                    f"no metaledger store at {directory} (create one with `metaledger init`)"
                )
            if self.read_only:
                raise StoreNotFoundError(f"no metaledger store at {directory} to open read-only")
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._create_file()
            except PermissionError as exc:
                raise NotAStoreError(
                    f"cannot create a store at {directory}: {exc.strerror}"
                ) from exc
            except OSError as exc:
                raise self._translate_os(exc) from exc
        elif not os.access(path, os.R_OK):
            raise NotAStoreError(f"{path} is not readable: permission denied")
        self._check_header(path)
        if not self.read_only and not (os.access(path, os.W_OK) and os.access(directory, os.W_OK)):
            # A read-only mount, or files this user may not write: still readable.
            self.read_only = True
            self.read_only_reason = (
                f"{directory} is on read-only storage (or not writable by this user): "
                "opened read-only"
            )
            log.info("store_opened_read_only", path=str(path), reason="storage not writable")
        try:
            conn = self._connect_and_prepare()
        except sqlite3.Error as exc:
            kind = sqlite_error_kind(exc)
            if kind == "corrupt" and self._salvage_if_truncated(path):
                pass  # read from a padded copy, read-only
            elif self.read_only and kind in ("cantopen", "readonly"):
                # SQLite could not create the -shm file beside a read-only log: read it
                # immutable. Nobody can be writing it, or the -shm file would exist.
                self._immutable = True
                self._warn_if_wal_unseen()
            else:
                raise self._translate(exc) from exc
            try:
                conn = self._connect_and_prepare()
            except sqlite3.Error as again:
                raise self._translate(again) from again
        self._writer = conn

    def _connect_and_prepare(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._sqlite_uri(read_only=self.read_only),
            uri=True,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._prepare(conn, translate=False)
        except BaseException:
            conn.close()
            raise
        return conn

    def _warn_if_wal_unseen(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(f"{self.path}-wal").st_size > 0:
                log.warning(
                    "store_wal_unread",
                    path=f"{self.path}-wal",
                    reason="read-only storage: commits still in the WAL file are not visible",
                )

    def _create_file(self) -> None:
        """Create a complete, empty log under a temporary name, then link it into place.

        So ``ledger.db`` never exists half-made: an empty or partial file found
        there is not one of ours, and is refused rather than taken over. Two
        processes creating the store at once both link; the second finds the
        first's file and opens it.
        """
        temp = self.directory / f".{LEDGER_FILE}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            # Created 0600 before SQLite sees it: configuration can hold credentials,
            # and SQLite gives the -wal and -shm files the main file's mode.
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(str(temp), isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._write_schema(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(temp, self.path)
            except FileExistsError:
                return  # another process created the store first: open its log
            except OSError:
                # A file system without hard links: rename, unless someone was faster.
                if self.path.exists():
                    return
                os.rename(temp, self.path)
            log.info("store_created", path=str(self.path))
            self.created = True
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{temp}{suffix}").unlink(missing_ok=True)

    def _salvage_if_truncated(self, path: Path) -> bool:
        """A log cut short: open a copy padded back to its size, read-only, to salvage it.

        SQLite refuses a file shorter than its header says at once; padded with
        zeros it reads every page before the cut, and reports the lost ones as
        corrupt (StoreCorruptError), so ``verify`` and ``export`` reach the damage.
        Called only once SQLite itself found the file corrupt: in WAL mode the
        header may rightly count pages that are still only in the -wal file.
        """
        with path.open("rb") as handle:
            header = handle.read(100)
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        # The header's page count is valid only when its change counter matches.
        if pages == 0 or header[24:28] != header[92:96]:
            return False
        size, actual = pages * page_size, path.stat().st_size
        if actual >= size:
            return False
        self._salvage_dir = tempfile.mkdtemp(prefix="metaledger-salvage-")
        copy = Path(self._salvage_dir) / LEDGER_FILE
        shutil.copyfile(path, copy)
        if os.path.exists(f"{path}-wal"):
            shutil.copyfile(f"{path}-wal", f"{copy}-wal")
        with copy.open("r+b") as handle:
            handle.truncate(size)
        self._open_path = copy
        self.read_only = True
        self.read_only_reason = (
            f"{path} is truncated ({actual:,} of {size:,} bytes): opened read-only to "
            "salvage what is readable (`metaledger export`); restore the store from a backup"
        )
        log.warning("store_truncated", path=str(path), size=actual, expected=size)
        return True

    def _check_header(self, path: Path) -> None:
        try:
            with path.open("rb") as handle:
                header = handle.read(100)
        except OSError as exc:
            raise NotAStoreError(f"cannot read {path}: {exc.strerror}") from exc
        if not header:
            # Never taken over: metaledger creates its log whole (see _create_file).
            raise NotAStoreError(
                f"{path} is empty (0 bytes), not a metaledger store; move it away "
                "(or restore the store from a backup)"
            )
        if not header.startswith(_SQLITE_HEADER):
            raise NotAStoreError(f"{path} is not a metaledger store (not a SQLite database)")
        if len(header) < 100:
            raise NotAStoreError(f"{path} is truncated: not a usable SQLite database")

    def _prepare(self, conn: sqlite3.Connection, *, translate: bool = True) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # One snapshot for both reads: another process creating the store
            # between them would otherwise look like a foreign database.
            conn.execute("BEGIN")
            try:
                app_id, tables = self._identify(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
            if app_id != APPLICATION_ID and tables:
                raise NotAStoreError(
                    f"{self.path} is a SQLite database of another application "
                    f"(tables: {', '.join(sorted(tables)[:5])}); metaledger leaves it untouched"
                )
            if app_id == APPLICATION_ID:
                self._meta = dict(conn.execute("SELECT key, value FROM ledger_meta").fetchall())
                stored = int(self._meta.get("schema_version", "0"))
                if stored > SCHEMA_VERSION:
                    # Never downgrade a newer log: read it, refuse to write it.
                    self.read_only = True
                    self.read_only_reason = (
                        f"{self.path} was written by a newer metaledger (log schema v{stored}, "
                        f"this release knows v{SCHEMA_VERSION}): opened read-only; upgrade "
                        "metaledger to write to it"
                    )
                    log.warning("store_opened_read_only", path=str(self.path), schema=stored)
                    conn.execute("PRAGMA query_only = 1")
                    self.schema_version = stored
                    return
                if stored == SCHEMA_VERSION:
                    self._configure(conn)
                    return
            if self.read_only:
                raise NotAStoreError(f"{self.path} holds no metaledger log yet")
            self._configure(conn)
            self._create(conn)
        except sqlite3.Error as exc:
            if not translate:
                raise
            raise self._translate(exc) from exc

    @staticmethod
    def _identify(conn: sqlite3.Connection) -> tuple[int, set[str]]:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return int(app_id), tables

    def _configure(self, conn: sqlite3.Connection) -> None:
        if self.read_only:
            conn.execute("PRAGMA query_only = 1")
            return
        mode = self._switch_to_wal(conn)
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: could not switch the log to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if self._max_page_count is not None:
            conn.execute(f"PRAGMA max_page_count = {int(self._max_page_count)}")

    def _switch_to_wal(self, conn: sqlite3.Connection) -> str:
        """Set WAL mode, retrying: the switch may fail at once while another opener holds a lock.

        SQLite does not always call the busy handler for a journal-mode change, so
        two processes opening a fresh store at once need this loop.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _create(self, conn: sqlite3.Connection) -> None:
        """Create the tables under the write lock; a concurrent opener waits, then finds them."""
        self._begin_immediate(conn)
        try:
            app_id, tables = self._identify(conn)
            if app_id != APPLICATION_ID:
                if tables:
                    raise NotAStoreError(f"{self.path} is a SQLite database of another application")
                self._write_schema(conn)
                log.info("store_created", path=str(self.path))
                self.created = True
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._meta = dict(conn.execute("SELECT key, value FROM ledger_meta").fetchall())

    def _write_schema(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";\n\n"):
            conn.execute(statement)
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "store_id": str(uuid.uuid4()),
            "created_at_us": str(_now_us()),
        }
        conn.executemany("INSERT INTO ledger_meta (key, value) VALUES (?, ?)", meta.items())
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    async def close(self) -> None:
        """Close both connections; safe to call twice.

        Never under a running statement: aiosqlite closes after the queries it
        has queued, and the writer is closed once its thread let go of it.
        """
        reader, self._reader = self._reader, None
        if reader is not None:
            with anyio.CancelScope(shield=True):
                await reader.close()
        writer, self._writer = self._writer, None
        if writer is not None:
            await close_when_idle(writer, self._writer_busy)
        checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(checkpoints.close)
        salvage, self._salvage_dir = self._salvage_dir, None
        if salvage is not None:
            shutil.rmtree(salvage, ignore_errors=True)

    def set_append_listener(self, listener: Callable[[], None]) -> None:
        """SQLite cannot tell us about other processes' appends: the store polls."""

    # -- writing ---------------------------------------------------------------

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        for attempt in range(self._busy_retries):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                log.warning("store_busy", path=str(self.path), attempt=attempt + 1)
        raise StoreBusyError(
            f"{self.path}: another writer held the write lock for "
            f"{self._busy_retries} x {self._busy_timeout:g} s; try again"
        )

    async def commit(
        self, appends: Sequence[PendingAppend], *, atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        """Store a batch in one transaction; see the Backend protocol."""
        if self.read_only:
            raise ReadOnlyStoreError(self.read_only_reason)
        async with self._write_limiter:
            return await anyio.to_thread.run_sync(self._commit_sync, appends, atomic)

    def commit_blocking(
        self, appends: Sequence[PendingAppend], atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        """:meth:`commit` run on the calling thread (the group-commit writer's own thread)."""
        if self.read_only:
            raise ReadOnlyStoreError(self.read_only_reason)
        return self._commit_sync(appends, atomic)

    # -- checkpoints -----------------------------------------------------------

    def start_background_checkpoints(self) -> None:
        """Stop checkpointing from the commit path: the writer asks for :meth:`checkpoint_blocking`.

        SQLite checkpoints a WAL from inside the COMMIT that grows it past 1,000
        pages, and every append waiting for that commit waits for the copy and
        its two fsyncs (see :mod:`eventstore.wal_checkpoints`). The group-commit
        writer, which commits from a thread of its own, calls this once and then
        runs the checkpoints on another thread when :meth:`checkpoint_due` says
        so; each commit first finishes the last one. PASSIVE checkpoints never
        block a commit.
        """
        if self.read_only or self._immutable:
            return
        with self._writer_busy:
            self._writer_conn().execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpoints = WalCheckpointer(self._connect_checkpointer, self._checkpoint_failed)

    def stop_background_checkpoints(self) -> None:
        """Give checkpoints back to the commit path (the writer stopped)."""
        if self._checkpoints is None:
            return
        with self._writer_busy:
            if self._writer is not None:
                self._writer.execute("PRAGMA wal_autocheckpoint = 1000")

    def checkpoint_due(self) -> bool:
        """Whether enough was committed since the last checkpoint to run one.

        True once per :data:`CHECKPOINT_BYTES` committed: the count starts again.
        """
        if self._checkpoints is not None and self._wal_bytes >= CHECKPOINT_BYTES:
            self._wal_bytes = 0
            return True
        return False

    def checkpoint_blocking(self) -> None:
        """A PASSIVE checkpoint on a connection of its own; problems are logged, not raised."""
        checkpoints = self._checkpoints
        if checkpoints is not None and self._writer is not None:
            checkpoints.run()

    def _connect_checkpointer(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._sqlite_uri(read_only=False),
            uri=True,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )

    def _checkpoint_failed(self, exc: sqlite3.Error) -> None:
        log.warning("checkpoint_failed", path=str(self.path), error=str(exc))

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise StoreClosedError(f"{self.uri} is closed")
        return self._writer

    def _commit_sync(
        self, appends: Sequence[PendingAppend], atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        with self._writer_busy:
            return self._commit_locked(appends, atomic)

    def _commit_locked(
        self, appends: Sequence[PendingAppend], atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        conn = self._writer_conn()
        if self._checkpoints is not None:
            self._checkpoints.finish(conn)
        try:
            self._begin_immediate(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            head = self._head_sync(conn)
            event_ids, streams = batch_keys(appends)
            existing = self._existing_sync(conn, event_ids)
            versions = self._cached_versions(conn, head.position, streams)
            plan = plan_batch(appends, head, existing, versions, _now_us())
            if atomic and not all(isinstance(o, AppendResult) for o in plan.outcomes):
                conn.execute("ROLLBACK")
                return plan.outcomes
            if plan.rows:
                _insert_rows(conn, plan.rows)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            self._cache_head = -1
            if len(appends) > 1 and not atomic:
                # Should not happen under the write lock; isolate the culprit rather
                # than fail its batch-mates.
                log.warning("batch_integrity_error", error=str(exc), size=len(appends))
                return [self._commit_locked([append])[0] for append in appends]
            raise self._translate(exc) from exc
        except sqlite3.Error as exc:
            self._cache_head = -1
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._translate(exc) from exc
        except BaseException:
            self._cache_head = -1
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for row in plan.rows:
            self._versions_cache[row[2]] = row[3]
            self._wal_bytes += len(row[7]) + len(row[8]) + _ROW_OVERHEAD
        assert plan.head is not None
        self._cache_head = plan.head.position
        return plan.outcomes

    def _cached_versions(
        self, conn: sqlite3.Connection, head: int, streams: Sequence[str]
    ) -> dict[str, int]:
        cache = self._versions_cache
        if head != self._cache_head or len(cache) > 100_000:
            cache.clear()
        missing = [s for s in streams if s not in cache]
        if missing:
            found = self._versions_sync(conn, missing)
            for stream_id in missing:
                cache[stream_id] = found.get(stream_id, 0)
        return {s: cache[s] for s in streams}

    @staticmethod
    def _head_sync(conn: sqlite3.Connection) -> ChainHead:
        row = conn.execute(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return ChainHead(0, GENESIS_HASH, 0)
        return ChainHead(row[0], row[1], row[2])

    @staticmethod
    def _existing_sync(
        conn: sqlite3.Connection, event_ids: Sequence[str]
    ) -> dict[str, ExistingEvent]:
        found: dict[str, ExistingEvent] = {}
        for chunk in _chunks(event_ids):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                "SELECT event_id, position, stream_id, stream_version, type, schema_version, data "
                f"FROM events WHERE event_id IN ({marks})",
                chunk,
            ):
                found[row[0]] = ExistingEvent(*row)
        return found

    @staticmethod
    def _versions_sync(conn: sqlite3.Connection, streams: Sequence[str]) -> dict[str, int]:
        # One indexed probe per stream (SQLite plans ``IN (...) GROUP BY`` as a
        # scan), all in one statement answering one row: every row fetched is a
        # step that gives the GIL away (see _insert_rows).
        row = conn.execute(_VERSIONS, (json.dumps(list(streams)),)).fetchone()
        found: dict[str, int] = json.loads(row[0]) if row and row[0] else {}
        return found

    async def import_rows(self, rows: Iterable[RowTuple]) -> int:
        """Insert rows verbatim in one transaction, continuing the log exactly."""
        if self.read_only:
            raise ReadOnlyStoreError(self.read_only_reason)
        conn = self._writer_conn()
        stop = threading.Event()

        def interrupt() -> None:
            # Both: SQLite's interrupt only reaches a statement that is running,
            # and between two rows none is.
            stop.set()
            conn.interrupt()

        async with self._write_limiter:
            # A long import stops at once on cancellation (Ctrl-C): rolled back whole.
            count: int = await run_sync_interruptibly(
                self._import_sync, rows, stop, interrupt=interrupt
            )
            return count

    def _import_sync(self, rows: Iterable[RowTuple], stop: threading.Event) -> int:
        with self._writer_busy:
            return self._import_locked(rows, stop)

    def _import_locked(self, rows: Iterable[RowTuple], stop: threading.Event) -> int:
        conn = self._writer_conn()
        self._cache_head = -1
        try:
            self._begin_immediate(conn)
            head = self._head_sync(conn)
            expected = [head.position + 1]

            def checked() -> Iterator[RowTuple]:
                for row in rows:
                    if stop.is_set():
                        raise StoreError("the import was interrupted; nothing of it was stored")
                    if row[0] != expected[0]:
                        raise StoreError(
                            f"row at position {row[0]} does not continue the log "
                            f"(next position is {expected[0]})"
                        )
                    expected[0] += 1
                    yield row

            conn.executemany(_INSERT, checked())
            conn.execute("COMMIT")
            return expected[0] - head.position - 1
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from exc
            raise

    # -- reading ---------------------------------------------------------------

    def _reader_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreClosedError(f"{self.uri} is closed")
        return self._reader

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[RowTuple]:
        try:
            rows = await self._reader_conn().execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return rows  # type: ignore[return-value]

    async def head(self) -> int:
        """The highest stored position (0 when empty)."""
        rows = await self._fetch("SELECT max(position) FROM events", ())
        return int(rows[0][0] or 0)

    async def read_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Rows from ``from_position`` on, in position order."""
        if types:
            marks = ",".join("?" * len(types))
            return await self._fetch(
                f"SELECT {_COLUMNS} FROM events WHERE position >= ? AND type IN ({marks}) "
                "ORDER BY position LIMIT ?",
                (from_position, *types, limit),
            )
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?",
            (from_position, limit),
        )

    @property
    def lean_reads(self) -> bool:
        """True: the file can be read again later for :meth:`rows_between_sync`.

        Not for a salvage (its padded copy goes when the handle closes).
        """
        return self._salvage_dir is None

    async def read_lean_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """(position, type, schema_version, data) of the rows :meth:`read_rows` would return."""
        if types:
            marks = ",".join("?" * len(types))
            return await self._fetch(
                f"SELECT {_LEAN_COLUMNS} FROM events WHERE position >= ? AND type IN ({marks}) "
                "ORDER BY position LIMIT ?",
                (from_position, *types, limit),
            )
        return await self._fetch(
            f"SELECT {_LEAN_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?",
            (from_position, limit),
        )

    async def read_lean_span(self, first: int, last: int) -> list[RowTuple]:
        """(type, schema_version, data) of the events from ``first`` to ``last``, in order.

        Python's ``sqlite3`` releases and retakes the GIL around every column of
        every row: a column less is a good part of a replay's cost per event.
        """
        return await self._fetch(
            f"SELECT {_SPAN_COLUMNS} FROM events WHERE position BETWEEN ? AND ? ORDER BY position",
            (first, last),
        )

    def rows_between_sync(
        self, first: int, last: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Whole rows from ``first`` to ``last`` (of ``types``), in order, read synchronously.

        On a connection of its own, opened for this read: it serves events a
        replay read lean (:class:`~eventstore.envelope.LazyRows`), which may be
        looked at after this handle closed. Positions never change, so it finds
        the rows the lean read saw.
        """
        where = "position BETWEEN ? AND ?"
        params: list[Any] = [first, last]
        if types:
            where += f" AND type IN ({','.join('?' * len(types))})"
            params += types
        try:
            conn = sqlite3.connect(
                self._sqlite_uri(read_only=True), uri=True, timeout=self._busy_timeout
            )
            try:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY position", params
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return rows

    async def read_stream_rows(
        self, stream_id: str, from_version: int, limit: int
    ) -> list[RowTuple]:
        """One stream's rows from ``from_version`` on, in version order."""
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? "
            "ORDER BY stream_version LIMIT ?",
            (stream_id, from_version, limit),
        )

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no event)."""
        rows = await self._fetch(
            "SELECT max(stream_version) FROM events WHERE stream_id = ?", (stream_id,)
        )
        return int(rows[0][0] or 0)

    async def row_by_event_id(self, event_id: str) -> RowTuple | None:
        """The row stored under ``event_id``, if any."""
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
        return rows[0] if rows else None

    async def rows_by_event_ids(self, event_ids: Sequence[str]) -> list[RowTuple]:
        """The stored rows of those event ids, a query per few hundred ids."""
        rows: list[RowTuple] = []
        for chunk in _chunks(list(event_ids)):
            marks = ",".join("?" * len(chunk))
            rows += await self._fetch(
                f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({marks})", chunk
            )
        return rows

    async def stream_versions(self, stream_ids: Sequence[str]) -> dict[str, int]:
        """Each stream's current version: an indexed max() per stream, a query per chunk."""
        versions: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(stream_ids))):
            values = ",".join("(?)" for _ in chunk)
            for stream_id, version in await self._fetch(
                "SELECT s.column1, (SELECT max(stream_version) FROM events "
                f"WHERE stream_id = s.column1) FROM (VALUES {values}) AS s",
                chunk,
            ):
                if version is not None:
                    versions[stream_id] = int(version)
        return versions

    async def position_at(self, recorded_at_us: int) -> int:
        """Binary search: ``recorded_at`` never decreases along positions (planner guarantee)."""
        low, high = 0, await self.head()
        while low < high:
            middle = (low + high + 1) // 2
            rows = await self._fetch("SELECT recorded_at FROM events WHERE position = ?", (middle,))
            if rows and rows[0][0] <= recorded_at_us:
                low = middle
            else:
                high = middle - 1
        return low

    async def info(self) -> dict[str, Any]:
        """Backend, path, schema version and size on disk."""
        size = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                size += os.stat(f"{self.path}{suffix}").st_size
        return {
            "backend": "sqlite",
            "uri": self.uri,
            "path": str(self.path),
            "schema_version": self.schema_version,
            "store_id": self._meta.get("store_id"),
            "size_bytes": size,
            "read_only": self.read_only,
            "synchronous": self._synchronous,
        }

    # -- errors ----------------------------------------------------------------

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        """A driver error as the store's own, naming the file (classified by result code)."""
        message = str(exc)
        kind = sqlite_error_kind(exc, near=self.path)
        if kind == "full":
            return StoreFullError(f"{self.path}: the disk or the store's size limit is full")
        if kind == "busy":
            return StoreBusyError(f"{self.path}: {message}")
        if kind == "corrupt":
            return StoreCorruptError(
                f"{self.path} is damaged ({message}); `metaledger verify` finds where, "
                "`metaledger export` salvages the events before it"
            )
        if kind == "notadb":
            return NotAStoreError(f"{self.path} is corrupt or not a SQLite database ({message})")
        if kind == "readonly" and not self.read_only:
            return ReadOnlyStoreError(f"{self.path} cannot be written: {message}")
        if kind in ("cantopen", "readonly"):
            return NotAStoreError(f"{self.path}: {message}")
        return StoreError(f"{self.path}: {message}")

    def _translate_os(self, exc: OSError) -> StoreError:
        if is_disk_full_oserror(exc):
            return StoreFullError(f"{self.path}: the disk is full ({exc.strerror})")
        return StoreError(f"{self.path}: {exc.strerror or exc}")
