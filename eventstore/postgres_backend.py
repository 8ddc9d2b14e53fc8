"""The PostgreSQL backend: the log in schema ``ledger`` (asyncpg), for teams.

Order is the hard part. PostgreSQL sequences hand out numbers at insert time
but transactions commit in any order, so a reader could see position 11
committed while 10 is still in flight, move its checkpoint past 10, and skip it
for ever (Marten #4953, KurrentDB #4970). Here every write transaction first
takes one transaction-scoped advisory lock, then reads the head, allocates the
next positions and commits; the lock is released by the commit. Positions are
therefore allocated and made visible strictly in order, gapless, and the hash
chain continues from a head nobody else can move meanwhile. Group commit
batches concurrent appends into one such transaction, as on SQLite.

The common case costs one round trip. A handle that wrote last knows the head
and its streams' versions, so it plans the batch before taking the lock and
sends it to one server-side function (``append_batch_v1``) that takes the lock,
checks the head is still the one it planned on, inserts and notifies: one
statement, its own transaction. If another process moved the head, or an event
id is already stored (a retry), nothing is written and the batch goes the long
way: ``BEGIN`` with the lock, one lookup, plan, insert, ``COMMIT``.

Subscribers are woken by ``LISTEN``/``NOTIFY`` (a hint only: they always re-read
from their checkpoint), with polling as the fallback.

A connection lost mid-commit leaves the transaction committed or rolled back,
never half. The backend then retries the batch on a fresh pooled connection:
event ids make the retry idempotent, so an append that did commit is reported
with its original positions and stored once.

A store URI may carry ``?schema_prefix=team_a``: the log then lives in schema
``team_a_ledger`` and the views in ``team_a_views``, so several stores share
one database.

Size: one ``Backend``, whose one-round-trip and long-way commits, schema set-up
and reads share the pool, the cached head and the error translation; they stay
in one module (~820 lines).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio

from .backend import SQL_COLUMNS, RowTuple
from .chain import GENESIS_HASH
from .envelope import AppendResult, datetime_from_us, us_from_datetime
from .errors import (
    AppendError,
    BackendUnavailableError,
    NotAStoreError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreNotFoundError,
)
from .logs import get_logger
from .planner import ChainHead, ExistingEvent, PendingAppend, batch_keys, plan_batch
from .secret_masking import mask_uri_credentials
from .uri import split_schema_prefix

__all__ = [
    "SCHEMA_VERSION",
    "PostgresBackend",
    "application_name",
    "lost_connection_errors",
    "split_dsn",
]

log = get_logger("eventstore.postgres")

#: The version of the log's tables this release writes.
SCHEMA_VERSION = 1
_COLUMNS = SQL_COLUMNS
_COPY_COLUMNS = [c.strip() for c in _COLUMNS.split(",")]
_RETRIES = 5
#: Tries of a read whose connection is lost, each on a fresh one (as many as a
#: commit gets): a server dropping connections repeatedly (a restart, a
#: connection killer) must not fail a read that a second or third try would answer.
_READ_ATTEMPTS = _RETRIES
#: The server-side one-round-trip append (see the module docstring). Versioned by
#: name: a change makes a new function, never a new meaning for an old one.
_APPEND_FUNCTION = "append_batch_v1"
#: Streams whose versions a handle remembers for the one-round-trip path.
_VERSIONS_CACHE = 100_000


def split_dsn(dsn: str) -> tuple[str, str]:
    """Split metaledger's own ``schema_prefix`` parameter off a PostgreSQL URI."""
    return split_schema_prefix(dsn)


def application_name(dsn: str) -> dict[str, str]:
    """``application_name`` for a pool: metaledger's, unless the URI names its own.

    ``?application_name=trainer-7`` in a store URI tells the connections of one
    process apart in ``pg_stat_activity``.
    """
    if any(key == "application_name" for key, _ in parse_qsl(urlsplit(dsn).query)):
        return {}
    return {"application_name": "metaledger"}


def lost_connection_errors() -> tuple[type[BaseException], ...]:
    """The driver errors meaning the connection is gone (the server, or the network)."""
    import asyncpg

    return (
        OSError,
        asyncpg.InterfaceError,
        # A connection terminated by the server mid-operation can leave asyncpg's
        # protocol in a state it reports this way: treat it as lost, too.
        asyncpg.InternalClientError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.exceptions.CannotConnectNowError,
    )


def _lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a schema-qualified name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def _append_function_sql(schema: str) -> str:
    """``append_batch_v1``: lock, check the head, insert, notify; one statement."""
    return f"""
        CREATE FUNCTION {schema}.{_APPEND_FUNCTION}(
            lock_key bigint, expected_head bigint, channel text,
            p bigint[], e uuid[], s text[], v bigint[], t text[], sv integer[],
            r timestamptz[], m bytea[], d bytea[], h bytea[]
        ) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            current_head bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            -- A new snapshot (READ COMMITTED): every commit made before the lock.
            SELECT position INTO current_head FROM {schema}.events
                ORDER BY position DESC LIMIT 1;
            current_head := coalesce(current_head, 0);
            IF current_head <> expected_head THEN
                RETURN current_head;  -- planned on a stale head: write nothing
            END IF;
            INSERT INTO {schema}.events ({_COLUMNS})
                SELECT * FROM unnest(p, e, s, v, t, sv, r, m, d, h);
            PERFORM pg_notify(channel, '');
            RETURN current_head;
        END
        $fn$
    """


def _now_us() -> int:
    return time.time_ns() // 1000


#: The row columns as a read selects them: the event id as text and the time as
#: microseconds since the epoch, converted by the server. Converted here (a UUID
#: and a datetime built per row, then turned into str and int) they cost about
#: 2 us a row, a fifth of reading a chunk. Exact on every version: whole
#: seconds times 10^6 plus the microseconds within the second, both integers.
_READ_COLUMNS = _COLUMNS.replace("event_id", "event_id::text").replace(
    "recorded_at",
    "(EXTRACT(EPOCH FROM date_trunc('second', recorded_at))::int8 * 1000000"
    " + EXTRACT(MICROSECONDS FROM recorded_at)::int8 % 1000000)",
)


def _row(record: Any) -> RowTuple:
    """A row read with :data:`_READ_COLUMNS` as the backend protocol's tuple."""
    return tuple(record)


def _pg_row(row: Sequence[Any]) -> tuple[Any, ...]:
    return (
        row[0],
        uuid.UUID(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        datetime_from_us(row[6]),
        row[7],
        row[8],
        row[9],
    )


def _pg_columns(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Planned rows as one array per column, for ``unnest``."""
    return list(zip(*(_pg_row(r) for r in rows), strict=True))


class PostgresBackend:
    """The log on a PostgreSQL server; see the module docstring."""

    #: Whether this handle's ``open`` created the store (its first open ever).
    created = False

    def __init__(
        self,
        dsn: str,
        *,
        read_only: bool = False,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        lock_timeout: float = 30.0,
        synchronous_commit: str = "on",
    ) -> None:
        self._dsn, prefix = split_dsn(dsn)
        self._synchronous_commit = synchronous_commit
        self.schema = f"{prefix}_ledger" if prefix else "ledger"
        self.views_schema = f"{prefix}_views" if prefix else "views"
        self.uri = mask_uri_credentials(dsn)
        self.read_only = read_only
        #: Why writes are refused, for the error message.
        self.read_only_reason = f"{self.uri} is open read-only"
        self.schema_version = SCHEMA_VERSION
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._lock_timeout = lock_timeout
        self._pool: Any = None
        self._listener: Any = None
        self._on_append: Callable[[], None] | None = None
        self._meta: dict[str, str] = {}
        self._lock = _lock_key(f"metaledger:{self.schema}:append")
        self._channel = f"metaledger_{_lock_key(self.schema):x}"[:63]
        # What this handle knows of the log after its last commit: the head and
        # its streams' versions; None when unknown (another writer, an error).
        self._known_head: ChainHead | None = None
        self._known_versions: dict[str, int] = {}
        self._fast_path = False

    # -- opening -------------------------------------------------------------

    async def open(self, *, create: bool) -> None:
        """Connect a pool and create or upgrade the schema (serialised by an advisory lock)."""
        try:
            import asyncpg
        except ImportError as exc:
            raise BackendUnavailableError(
                "the PostgreSQL backend needs asyncpg: pip install 'metaledger[postgres]'"
            ) from exc
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                command_timeout=None,
                server_settings={
                    **application_name(self._dsn),
                    # The ordering argument needs a fresh snapshot after the lock is
                    # taken: READ COMMITTED, whatever the server's default.
                    "default_transaction_isolation": "read committed",
                    # A writer stuck behind another's lock gives up, as SQLite's busy timeout.
                    "lock_timeout": f"{int(self._lock_timeout * 1000)}",
                    # The store's durability (see eventstore.store_factories).
                    "synchronous_commit": self._synchronous_commit,
                },
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise BackendUnavailableError(f"cannot connect to {self.uri}: {exc}") from exc
        try:
            async with self._pool.acquire() as conn:
                await self._prepare(conn, create)
            await self._listen()
        except BaseException:
            await self.close()
            raise

    async def _prepare(self, conn: Any, create: bool) -> None:
        schema = self.schema
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.ledger_meta")
        if not exists:
            if not create:
                raise StoreNotFoundError(
                    f"no metaledger store at {self.uri} (schema {schema}); "
                    "create one with `metaledger init`"
                )
            if self.read_only:
                raise StoreNotFoundError(f"no metaledger store at {self.uri} to open read-only")
            async with conn.transaction():
                # Two processes creating a fresh store at once: the second waits here,
                # then finds the tables made.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
                await self._create(conn)
        self._meta = {
            r["key"]: r["value"]
            for r in await conn.fetch(f"SELECT key, value FROM {schema}.ledger_meta")
        }
        if self._meta.get("application") != "metaledger":
            raise NotAStoreError(f"schema {schema} at {self.uri} is not a metaledger log")
        stored = int(self._meta.get("schema_version", "0"))
        if stored > SCHEMA_VERSION:
            # Never downgrade a newer log: read it, refuse to write it.
            self.read_only = True
            self.read_only_reason = (
                f"{self.uri} was written by a newer metaledger (log schema v{stored}, this "
                f"release knows v{SCHEMA_VERSION}): opened read-only; upgrade metaledger to write"
            )
            log.warning("store_opened_read_only", uri=self.uri, schema=stored)
            self.schema_version = stored
        if not self.read_only:
            await self._ensure_append_function(conn)

    async def _ensure_append_function(self, conn: Any) -> None:
        """Create the one-round-trip append function if this log lacks it (older logs)."""
        import asyncpg

        schema = self.schema
        exists_sql = (
            "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2)"
        )
        if not await conn.fetchval(exists_sql, schema, _APPEND_FUNCTION):
            try:
                async with conn.transaction():
                    # Two openers at once: the second finds it made.
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
                    if not await conn.fetchval(exists_sql, schema, _APPEND_FUNCTION):
                        await conn.execute(_append_function_sql(schema))
            except asyncpg.InsufficientPrivilegeError:
                # A role that may write rows but not create functions: every batch
                # goes the long way, which is correct, only slower.
                log.info("append_function_unavailable", uri=self.uri, schema=schema)
                return
        self._fast_path = True

    async def _create(self, conn: Any) -> None:
        schema = self.schema
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.ledger_meta"):
            return
        await conn.execute(
            f"""
            CREATE TABLE {schema}.events (
                position       BIGINT      PRIMARY KEY,
                event_id       UUID        NOT NULL UNIQUE,
                stream_id      TEXT        NOT NULL,
                stream_version BIGINT      NOT NULL,
                type           TEXT        NOT NULL,
                schema_version INTEGER     NOT NULL,
                recorded_at    TIMESTAMPTZ NOT NULL,
                metadata       BYTEA       NOT NULL,
                data           BYTEA       NOT NULL,
                hash           BYTEA       NOT NULL,
                UNIQUE (stream_id, stream_version)
            );
            CREATE INDEX events_recorded_at ON {schema}.events (recorded_at);
            CREATE FUNCTION {schema}.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the metaledger log is append-only'; END $$;
            CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events
                FOR EACH ROW EXECUTE FUNCTION {schema}.append_only();
            CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
                FOR EACH STATEMENT EXECUTE FUNCTION {schema}.append_only();
            CREATE TABLE {schema}.ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        await conn.executemany(
            f"INSERT INTO {schema}.ledger_meta (key, value) VALUES ($1, $2)",
            [
                ("application", "metaledger"),
                ("schema_version", str(SCHEMA_VERSION)),
                ("store_id", str(uuid.uuid4())),
                ("created_at_us", str(_now_us())),
            ],
        )
        log.info("store_created", uri=self.uri, schema=schema)
        self.created = True

    async def _listen(self) -> None:
        """A dedicated connection LISTENing for appends of other processes (a hint only)."""
        import asyncpg

        if self._on_append is None:
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            await conn.add_listener(self._channel, self._notified)
            self._listener = conn

    def _notified(self, *_: Any) -> None:
        if self._on_append is not None:
            self._on_append()

    async def close(self) -> None:
        """Close the listener and the pool; safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await pool.close()

    def set_append_listener(self, listener: Callable[[], None]) -> None:
        """Wake ``listener`` on every append NOTIFY (set before ``open``)."""
        self._on_append = listener

    # -- writing ---------------------------------------------------------------

    def _errors(self) -> tuple[type[BaseException], ...]:
        return lost_connection_errors()

    async def commit(
        self, appends: Sequence[PendingAppend], *, atomic: bool = False
    ) -> list[AppendResult | AppendError]:
        """Store a batch in one transaction; retried on a fresh connection if one is lost."""
        if self.read_only:
            raise ReadOnlyStoreError(self.read_only_reason)
        lost = self._errors()
        for attempt in range(_RETRIES):
            try:
                async with self._pool.acquire() as conn:
                    if attempt == 0:
                        outcomes = await self._commit_fast(conn, appends)
                        if outcomes is not None:
                            return outcomes
                    return await self._commit(conn, appends, atomic)
            except lost as exc:
                self._forget()
                # Committed or rolled back, never half: the retry's idempotency
                # check tells which, and returns the original positions if it did.
                log.warning("connection_lost", attempt=attempt + 1, error=str(exc))
                await self._expire()
                await anyio.sleep(0.05 * (attempt + 1))
        raise BackendUnavailableError(f"{self.uri}: the connection kept failing; try again")

    def _forget(self) -> None:
        self._known_head = None
        self._known_versions.clear()

    def _remember(self, head: ChainHead, versions: dict[str, int], rows: Sequence[Any]) -> None:
        known = self._known_versions
        if len(known) > _VERSIONS_CACHE:
            known.clear()
        known.update(versions)
        for row in rows:
            known[row[2]] = row[3]
        self._known_head = head

    async def _commit_fast(
        self, conn: Any, appends: Sequence[PendingAppend]
    ) -> list[AppendResult | AppendError] | None:
        """One round trip, planned on what this handle knows; None: go the long way."""
        import asyncpg

        head = self._known_head
        if not self._fast_path or head is None:
            return None
        known = self._known_versions
        _, streams = batch_keys(appends)
        if any(stream not in known for stream in streams):
            return None
        # No event id looked up: a retry of a stored append meets the unique index
        # and takes the long way, which judges it.
        plan = plan_batch(appends, head, {}, {s: known[s] for s in streams}, _now_us())
        if not plan.rows or not all(isinstance(o, AppendResult) for o in plan.outcomes):
            return None  # a conflict judged on cached versions is confirmed under the lock
        columns = _pg_columns(plan.rows)
        try:
            found = await conn.fetchval(
                self._append_call_sql, self._lock, head.position, self._channel, *columns
            )
        except self._errors():
            self._forget()
            raise  # the connection is gone: commit() retries the long way
        except asyncpg.PostgresError:
            # A stored id (a retry) meets the unique index; any other server error
            # is met again on the long way, which reports it as a StoreError.
            self._forget()
            return None
        except BaseException:
            self._forget()
            raise
        if found != head.position:
            self._forget()  # another writer moved the head; nothing was written
            return None
        assert plan.head is not None
        self._remember(plan.head, {}, plan.rows)
        return plan.outcomes

    @property
    def _append_call_sql(self) -> str:
        return (
            f"SELECT {self.schema}.{_APPEND_FUNCTION}($1, $2, $3, $4::bigint[], $5::uuid[], "
            "$6::text[], $7::bigint[], $8::text[], $9::int[], $10::timestamptz[], "
            "$11::bytea[], $12::bytea[], $13::bytea[])"
        )

    async def _commit(
        self, conn: Any, appends: Sequence[PendingAppend], atomic: bool
    ) -> list[AppendResult | AppendError]:
        # Four round trips per batch: BEGIN with the lock, one lookup, one insert
        # (with its NOTIFY), COMMIT. Each saved round trip is a lock held shorter.
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._lock})")
        try:
            event_ids, streams = batch_keys(appends)
            head, existing, versions = await self._lookup(conn, event_ids, streams)
            if self._known_head is None or self._known_head.position != head.position:
                # Another writer moved the head: what this handle remembers is stale.
                self._known_versions.clear()
            plan = plan_batch(appends, head, existing, versions, _now_us())
            if atomic and not all(isinstance(o, AppendResult) for o in plan.outcomes):
                await conn.execute("ROLLBACK")
                return plan.outcomes
            if plan.rows:
                columns = _pg_columns(plan.rows)
                await conn.execute(self._insert_sql, *columns, self._channel)
            await conn.execute("COMMIT")
        except self._errors():
            self._forget()
            raise  # the connection is gone: the caller retries on another one
        except BaseException as exc:
            self._forget()
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            if isinstance(exc, Exception):
                raise self._translate(exc) from exc
            raise
        # The lock was held through COMMIT: this is the head, and these the versions.
        assert plan.head is not None
        self._remember(plan.head, {s: versions.get(s, 0) for s in streams}, plan.rows)
        return plan.outcomes

    @property
    def _insert_sql(self) -> str:
        return (
            f"WITH stored AS (INSERT INTO {self.schema}.events ({_COLUMNS}) "
            "SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], "
            "$5::text[], $6::int[], $7::timestamptz[], $8::bytea[], $9::bytea[], $10::bytea[]) "
            "RETURNING 1) SELECT pg_notify($11, ''), (SELECT count(*) FROM stored)"
        )

    async def _lookup(
        self, conn: Any, event_ids: Sequence[str], streams: Sequence[str]
    ) -> tuple[ChainHead, dict[str, ExistingEvent], dict[str, int]]:
        """The head, the events already stored under the batch's ids, and its streams'
        versions: one query, under the lock."""
        schema = self.schema
        rows = await conn.fetch(
            "SELECT 0, position, NULL::uuid, NULL::text, NULL::bigint, NULL::text, NULL::int, "
            f"hash, recorded_at FROM (SELECT position, hash, recorded_at FROM {schema}.events "
            "ORDER BY position DESC LIMIT 1) head "
            "UNION ALL SELECT 1, position, event_id, stream_id, stream_version, type, "
            f"schema_version, data, NULL FROM {schema}.events WHERE event_id = ANY($1::uuid[]) "
            # One index probe per stream (a GROUP BY over ANY(...) plans as a scan).
            "UNION ALL SELECT 2, NULL, NULL, s, (SELECT stream_version FROM "
            f"{schema}.events WHERE stream_id = s ORDER BY stream_version DESC LIMIT 1), "
            "NULL, NULL, NULL, NULL FROM unnest($2::text[]) AS s",
            [uuid.UUID(i) for i in event_ids],
            list(streams),
        )
        head = ChainHead(0, GENESIS_HASH, 0)
        existing: dict[str, ExistingEvent] = {}
        versions: dict[str, int] = {}
        for (
            kind,
            position,
            event_id,
            stream_id,
            version,
            event_type,
            schema_version,
            blob,
            at,
        ) in rows:
            if kind == 0:
                head = ChainHead(position, bytes(blob), us_from_datetime(at))
            elif kind == 1:
                key = str(event_id)
                existing[key] = ExistingEvent(
                    key, position, stream_id, version, event_type, schema_version, bytes(blob)
                )
            elif version is not None:
                versions[stream_id] = version
        return head, existing, versions

    async def _head_row(self, conn: Any) -> ChainHead:
        row = await conn.fetchrow(
            f"SELECT position, hash, recorded_at FROM {self.schema}.events "
            "ORDER BY position DESC LIMIT 1"
        )
        if row is None:
            return ChainHead(0, GENESIS_HASH, 0)
        return ChainHead(row[0], bytes(row[1]), us_from_datetime(row[2]))

    async def import_rows(self, rows: Iterable[RowTuple]) -> int:
        """Insert rows verbatim in one transaction, continuing the log exactly."""
        if self.read_only:
            raise ReadOnlyStoreError(self.read_only_reason)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
                head = await self._head_row(conn)
                expected = head.position + 1
                chunk: list[tuple[Any, ...]] = []
                count = 0
                for row in rows:
                    if row[0] != expected:
                        raise StoreError(
                            f"row at position {row[0]} does not continue the log "
                            f"(next position is {expected})"
                        )
                    expected += 1
                    chunk.append(_pg_row(row))
                    if len(chunk) >= 5000:
                        await self._copy(conn, chunk)
                        count += len(chunk)
                        chunk = []
                if chunk:
                    await self._copy(conn, chunk)
                    count += len(chunk)
                await conn.execute("SELECT pg_notify($1, $2)", self._channel, "")
                return count
        except StoreError:
            raise
        except Exception as exc:
            raise self._translate(exc) from exc

    async def _copy(self, conn: Any, records: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table(
            "events", schema_name=self.schema, columns=_COPY_COLUMNS, records=records
        )

    # -- reading ---------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        """One read; run again on a fresh connection if the pooled one was lost."""
        lost = self._errors()
        for attempt in range(_READ_ATTEMPTS):
            try:
                async with self._pool.acquire() as conn:
                    return list(await conn.fetch(sql, *params))
            except lost as exc:
                if attempt + 1 == _READ_ATTEMPTS:
                    raise self._translate(exc) from exc
                # A read changes nothing, so running it again is always safe. The
                # pool's other idle connections died with this one (a server
                # restart, a terminated backend): replace them all.
                log.warning("connection_lost", read=True, attempt=attempt + 1, error=str(exc))
                await self._expire()
            except Exception as exc:
                raise self._translate(exc) from exc
        raise AssertionError("unreachable")

    async def _expire(self) -> None:
        """Replace every pooled connection on its next use (after a lost connection)."""
        pool = self._pool
        if pool is not None:
            await pool.expire_connections()

    async def head(self) -> int:
        """The highest stored position (0 when empty)."""
        if self._listener is not None and self._listener.is_closed():
            self._listener = None
        if self._listener is None and self._on_append is not None and self._pool is not None:
            await self._listen()
        rows = await self._fetch(f"SELECT max(position) FROM {self.schema}.events")
        return int(rows[0][0] or 0)

    async def read_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Rows from ``from_position`` on, in position order."""
        return list(map(tuple, await self._select(_READ_COLUMNS, from_position, limit, types)))

    #: Whole rows only: the lazy envelope of a lean read needs a synchronous reader.
    lean_reads = False

    async def read_lean_rows(
        self, from_position: int, limit: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """(position, type, schema_version, data) of the rows :meth:`read_rows` would return."""
        columns = "position, type, schema_version, data"
        return [tuple(r) for r in await self._select(columns, from_position, limit, types)]

    async def _select(
        self, columns: str, from_position: int, limit: int, types: Sequence[str] | None
    ) -> list[Any]:
        if types:
            return await self._fetch(
                f"SELECT {columns} FROM {self.schema}.events WHERE position >= $1 "
                "AND type = ANY($2::text[]) ORDER BY position LIMIT $3",
                from_position,
                list(types),
                limit,
            )
        return await self._fetch(
            f"SELECT {columns} FROM {self.schema}.events WHERE position >= $1 "
            "ORDER BY position LIMIT $2",
            from_position,
            limit,
        )

    async def read_lean_span(self, first: int, last: int) -> list[RowTuple]:
        """(type, schema_version, data) of the events from ``first`` to ``last``, in order."""
        rows = await self._fetch(
            f"SELECT type, schema_version, data FROM {self.schema}.events "
            "WHERE position BETWEEN $1 AND $2 ORDER BY position",
            first,
            last,
        )
        return [tuple(r) for r in rows]

    def rows_between_sync(
        self, first: int, last: int, types: Sequence[str] | None = None
    ) -> list[RowTuple]:
        """Not offered (``lean_reads`` is False): asyncpg has no synchronous reads."""
        raise NotImplementedError("the PostgreSQL backend reads whole rows only")

    async def read_stream_rows(
        self, stream_id: str, from_version: int, limit: int
    ) -> list[RowTuple]:
        """One stream's rows from ``from_version`` on, in version order."""
        rows = await self._fetch(
            f"SELECT {_READ_COLUMNS} FROM {self.schema}.events WHERE stream_id = $1 "
            "AND stream_version >= $2 ORDER BY stream_version LIMIT $3",
            stream_id,
            from_version,
            limit,
        )
        return [_row(r) for r in rows]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no event)."""
        rows = await self._fetch(
            f"SELECT max(stream_version) FROM {self.schema}.events WHERE stream_id = $1",
            stream_id,
        )
        return int(rows[0][0] or 0)

    async def row_by_event_id(self, event_id: str) -> RowTuple | None:
        """The row stored under ``event_id``, if any."""
        try:
            key = uuid.UUID(event_id)
        except ValueError:
            return None
        rows = await self._fetch(
            f"SELECT {_READ_COLUMNS} FROM {self.schema}.events WHERE event_id = $1", key
        )
        return _row(rows[0]) if rows else None

    async def rows_by_event_ids(self, event_ids: Sequence[str]) -> list[RowTuple]:
        """The stored rows of those event ids, in one query."""
        keys = []
        for event_id in event_ids:
            try:
                keys.append(uuid.UUID(event_id))
            except ValueError:
                continue  # not a UUID: never stored here
        if not keys:
            return []
        rows = await self._fetch(
            f"SELECT {_READ_COLUMNS} FROM {self.schema}.events WHERE event_id = ANY($1::uuid[])",
            keys,
        )
        return [_row(r) for r in rows]

    async def stream_versions(self, stream_ids: Sequence[str]) -> dict[str, int]:
        """Each stream's current version, in one query (an index probe per stream)."""
        streams = list(dict.fromkeys(stream_ids))
        if not streams:
            return {}
        rows = await self._fetch(
            f"SELECT s, (SELECT max(stream_version) FROM {self.schema}.events "
            "WHERE stream_id = s) FROM unnest($1::text[]) AS s",
            streams,
        )
        return {r[0]: int(r[1]) for r in rows if r[1] is not None}

    async def position_at(self, recorded_at_us: int) -> int:
        """The last position recorded at or before the time (indexed)."""
        rows = await self._fetch(
            f"SELECT max(position) FROM {self.schema}.events WHERE recorded_at <= $1",
            datetime_from_us(recorded_at_us),
        )
        return int(rows[0][0] or 0)

    async def info(self) -> dict[str, Any]:
        """Backend, URI, schema version and size on disk."""
        rows = await self._fetch(
            "SELECT pg_total_relation_size($1::regclass)", f"{self.schema}.events"
        )
        return {
            "backend": "postgresql",
            "uri": self.uri,
            "schema": self.schema,
            "views_schema": self.views_schema,
            "schema_version": self.schema_version,
            "store_id": self._meta.get("store_id"),
            "size_bytes": int(rows[0][0] or 0),
            "read_only": self.read_only,
        }

    # -- errors ----------------------------------------------------------------

    def _translate(self, exc: BaseException) -> StoreError:
        """A driver error as the store's own, naming the store."""
        import asyncpg

        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, asyncpg.exceptions.DiskFullError):
            return StoreFullError(f"{self.uri}: the server's disk is full")
        if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
            return StoreBusyError(f"{self.uri}: another writer held the lock too long; try again")
        if isinstance(exc, self._errors()):
            return BackendUnavailableError(f"{self.uri}: {exc}")
        return StoreError(f"{self.uri}: {exc}")
