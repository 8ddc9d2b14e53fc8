"""Views on PostgreSQL: the same projections, checkpoints and rebuilds, in schema ``views``.

The transactions of :mod:`projections.transactions` run here unchanged: this
driver feeds their requests to asyncpg, turning ``?`` marks into ``$1, $2...``.
Each write transaction first takes an advisory lock on the views schema, so one
runner at a time applies events (the way SQLite's write lock does it); the
others wait their turn or serve reads. Reads run in a REPEATABLE READ
transaction: one snapshot per query group.

Size: one class (~500 lines): the connection pool's life, the advisory lock,
the request driver and the coalesced writes (each segment one statement, its
rows as JSON, their types checked first) share one transaction's state.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio
import msgspec

from eventstore.logs import get_logger

from .errors import ViewsStoreError
from .requests import BulkRows, ExecuteMany
from .row_ops import Layout, to_sql
from .transaction_driver import drive_async
from .transactions import (
    STATE_DDL,
    ApplyOps,
    Execute,
    Fetch,
    LoadRows,
    OpError,
    Script,
    Tx,
    WriteMany,
)

__all__ = ["PostgresViewsStore", "to_dollar_params"]

log = get_logger("projections.postgres")

#: Tries of a views transaction or read whose connection is lost, each on a fresh one.
_ATTEMPTS = 5
_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\?")


def to_dollar_params(sql: str) -> str:
    """Rewrite ``?`` placeholders (outside string literals) as ``$1``, ``$2``..."""
    counter = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) != "?":
            return match.group(0)
        counter += 1
        return f"${counter}"

    return _QUOTED_OR_MARK.sub(replace, sql)


#: Statements sent per round trip by the bulk path of ApplyOps.
_SCRIPT_STATEMENTS = 20_000


class _NotLiteral(Exception):
    """A parameter the bulk path does not write as a literal: use bound parameters."""


def _literal(value: Any) -> str:
    # Only the types the projections' handlers pass; anything else takes the
    # bound-parameter path, where asyncpg's own encoders apply.
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is str:
        text: str = value
        if "\x00" in text:
            raise _NotLiteral
        return "'" + text.replace("'", "''") + "'"  # standard_conforming_strings: on
    if kind is int:
        return str(value)
    if kind is float and value == value and value not in (float("inf"), float("-inf")):
        return repr(value)
    raise _NotLiteral


def render_literal_sql(sql: str, params: Sequence[Any]) -> str:
    """``sql`` with each ``?`` (outside string literals) replaced by its parameter as a literal.

    Raises _NotLiteral for a parameter of another type (bytes, bool, a NUL in text).
    """
    values = iter(params)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) != "?":
            return match.group(0)
        return _literal(next(values))

    return _QUOTED_OR_MARK.sub(replace, sql)


_json_text = msgspec.json.Encoder().encode

#: The Python types a coalesced value may have in a column of each type, exactly
#: (a bool is not taken for an integer): what asyncpg's own encoders took when
#: rows went as typed arrays. JSON would let a digit string into a BIGINT
#: column where the statement fails, so anything else is refused before
#: anything is sent, and the batch runs as statements, which report it.
_TAKES = {
    "text": frozenset({str, type(None)}),
    "int8": frozenset({int, type(None)}),
    "int4": frozenset({int, type(None)}),
}


class _Refused(Exception):
    """A coalesced value of a type its column does not take: nothing was sent."""


def _json_rows(rows: Sequence[Sequence[Any]], types: Sequence[str]) -> str:
    """Rows as one JSON array of arrays, after checking each column's value types."""
    for column, kind in zip(zip(*rows, strict=True), types, strict=True):
        if not _TAKES[kind].issuperset(map(type, column)):
            raise _Refused(f"a value of another type than {kind}")
    return _json_text(rows).decode()


def _json_keys(keys: Sequence[Any], types: Sequence[str]) -> str:
    """A load's keys (values of a one-column key, else tuples) as one JSON array."""
    if len(types) == 1:
        if not _TAKES[types[0]].issuperset(map(type, keys)):
            raise _Refused(f"a key of another type than {types[0]}")
        return _json_text(keys).decode()
    return _json_rows(keys, types)


def _from_json(value: str, kind: str) -> str:
    """The SQL of a JSON text ``value`` as a column of type ``kind``."""
    return value if kind == "text" else f"({value})::{kind}"


def _column_types(shape: Layout, indexes: Iterable[int]) -> tuple[str, ...]:
    return tuple(shape.pg_arrays[i].removesuffix("[]") for i in indexes)


def _shape_key(shape: Layout) -> tuple[Any, ...]:
    """What a statement's text depends on in a layout (a layout holds a dict: unhashable)."""
    return shape.columns, shape.key, shape.pg_arrays


def _pg_load_sql(table: str, shape: Layout) -> str:
    """The rows of ``table`` at the keys of parameter $1 (a JSON array), one round trip."""
    picked = ", ".join(f"t.{c}" for c in shape.columns)
    types = _column_types(shape, shape.key_index)
    if len(types) == 1:
        on = f"t.{shape.key[0]} = {_from_json('k.v', types[0])}"
        keys = "jsonb_array_elements_text($1::jsonb) AS k(v)"
    else:
        on = " AND ".join(
            f"t.{c} = {_from_json(f'k.v ->> {n}', kind)}"
            for n, (c, kind) in enumerate(zip(shape.key, types, strict=True))
        )
        keys = "jsonb_array_elements($1::jsonb) AS k(v)"
    return f"SELECT {picked} FROM {table} t JOIN {keys} ON {on}"


def _pg_write_sql(kind: str, table: str, shape: Layout, number: int) -> str:
    """One kind of coalesced write to ``table``: its rows are the JSON array of ``$number``."""
    rows = f"jsonb_array_elements(${number}::jsonb) AS r(v)"
    if kind == "delete":
        types = _column_types(shape, shape.key_index)
        where = " AND ".join(
            f"t.{c} = {_from_json(f'r.v ->> {n}', column_type)}"
            for n, (c, column_type) in enumerate(zip(shape.key, types, strict=True))
        )
        return f"DELETE FROM {table} t USING {rows} WHERE {where}"
    types = _column_types(shape, range(len(shape.columns)))
    values = ", ".join(_from_json(f"r.v ->> {n}", t) for n, t in enumerate(types))
    sql = f"INSERT INTO {table} ({', '.join(shape.columns)}) SELECT {values} FROM {rows}"
    if kind == "insert":
        return sql
    assert kind == "update"
    key = ", ".join(shape.key)
    changed = [c for c in shape.columns if c not in shape.key]
    if not changed:
        return f"{sql} ON CONFLICT ({key}) DO NOTHING"
    assignments = ", ".join(f"{c} = excluded.{c}" for c in changed)
    return f"{sql} ON CONFLICT ({key}) DO UPDATE SET {assignments}"


def _pg_write_many_sql(parts: Sequence[tuple[str, str, Layout]]) -> str:
    """A segment's writes as one statement: each but the last a data-modifying ``WITH`` part.

    Every part runs, to completion, whether or not the statement reads it;
    they write different tables, or different keys of one table (a key is
    deleted, updated or inserted, never two of these), so their order does
    not matter.
    """
    statements = [
        _pg_write_sql(kind, table, shape, number)
        for number, (kind, table, shape) in enumerate(parts, start=1)
    ]
    if len(statements) == 1:
        return statements[0]
    with_parts = ", ".join(f"w{n} AS ({sql})" for n, sql in enumerate(statements[:-1], start=1))
    return f"WITH {with_parts} {statements[-1]}"


def _pg_bulk_sql(bulk: BulkRows) -> str:
    """An ExecuteMany's statement for all its rows at once: parameter $1 is their JSON array."""
    rows = "jsonb_array_elements($1::jsonb) AS r(v)"
    values = [_from_json(f"r.v ->> {n}", kind) for n, kind in enumerate(bulk.types)]
    if bulk.update:
        assignments = ", ".join(
            f"{column} = {value}"
            for n, (column, value) in enumerate(zip(bulk.columns, values, strict=True))
            if n not in bulk.key
        )
        where = " AND ".join(f"t.{bulk.columns[n]} = {values[n]}" for n in bulk.key)
        return f"UPDATE {bulk.table} AS t SET {assignments} FROM {rows} WHERE {where}"
    columns = ", ".join(bulk.columns)
    sql = f"INSERT INTO {bulk.table} ({columns}) SELECT {', '.join(values)} FROM {rows}"
    return f"{sql} {bulk.conflict}" if bulk.conflict else sql


def _rounds(rows: list[tuple[Any, ...]], key: tuple[int, ...]) -> list[list[tuple[Any, ...]]]:
    """``rows`` split so that no part holds two rows of one key, each key's rows in order.

    Rows of different keys commute, so running the parts in order does what
    running the rows one by one does; nearly always there is one part.
    """
    if not key:
        return [rows]
    get = operator.itemgetter(*key)
    if len(set(map(get, rows))) == len(rows):
        return [rows]  # every key once: the common case, checked at C speed
    seen: dict[Any, int] = {}
    parts: list[list[tuple[Any, ...]]] = [[]]
    for row in rows:
        k = get(row)
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n == len(parts):
            parts.append([])
        parts[n].append(row)
    return parts


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresViewsStore:
    """The views of a PostgreSQL store, in their own schema of the same database."""

    #: Runners coalesce a chunk's row ops before writing them here: one set-based
    #: statement per table and kind of change instead of one per op.
    coalesces = True
    #: Runners fold the run lifecycle projections' events straight into rows
    #: (:mod:`projections.fold`), sent one statement a table (:class:`BulkRows`).
    folds = True

    def __init__(
        self,
        dsn: str,
        schema: str,
        *,
        pool_size: int = 3,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.location = f"{schema} schema"
        self._dsn = dsn
        self._server_settings = server_settings
        self._schema = schema
        self._pool_size = pool_size
        self._pool: Any = None
        self._sql: dict[str, str] = {}
        self._render_cache: dict[Any, str] = {}
        # Literals are written for standard_conforming_strings = on (checked at open).
        self._literals_ok = False
        self._lock = (
            int.from_bytes(
                hashlib.sha256(f"metaledger:{schema}:views".encode()).digest()[:8], "big"
            )
            >> 1
        )

    def _pg(self, sql: str) -> str:
        converted = self._sql.get(sql)
        if converted is None:
            converted = to_dollar_params(sql)
            self._sql[sql] = converted
        return converted

    async def open(self) -> None:
        """Connect and create the schema and the state tables."""
        import asyncpg

        from eventstore.postgres_backend import application_name

        settings = self._server_settings
        if settings is None:
            settings = application_name(self._dsn)
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                server_settings={"search_path": self._schema, **settings},
            )
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
                # One round trip (no parameters: the simple query protocol).
                await conn.execute(
                    ";\n".join((f"CREATE SCHEMA IF NOT EXISTS {self._schema}", *STATE_DDL))
                )
                conforming = await conn.fetchval("SHOW standard_conforming_strings")
                self._literals_ok = conforming == "on"
        except Exception as exc:
            await self.close()
            raise ViewsStoreError(f"cannot open the views in {self.location}: {exc}") from exc

    async def close(self) -> None:
        """Close the pool; shielded, so a cancelled caller (Ctrl-C) still closes it cleanly."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await pool.close()

    async def transact(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run a generator transaction under the views schema's advisory lock.

        A connection lost on the way runs the transaction again on a fresh one
        (up to four times). That is safe even if the loss hid a commit: every transaction reads
        the state it decides on (checkpoints, generations) under the lock, as it
        must anyway when another runner ran the same one just before.
        """
        return await self._retrying(self._transact_once, body)

    async def _retrying(self, attempt: Callable[[Callable[[], Tx[Any]]], Any], body: Any) -> Any:
        from eventstore.postgres_backend import lost_connection_errors

        lost = lost_connection_errors()
        for number in range(1, _ATTEMPTS + 1):
            pool = self._pool
            if pool is None:
                raise ViewsStoreError(f"the views in {self.location} are closed")
            try:
                return await attempt(body)
            except lost as exc:
                if number == _ATTEMPTS:
                    raise ViewsStoreError(
                        f"{self.location}: the connection kept failing: {exc}"
                    ) from exc
                log.warning("connection_lost", views=self.location, attempt=number, error=str(exc))
                # The pool's idle connections died with this one: replace them all.
                await pool.expire_connections()
        raise AssertionError("unreachable")

    async def _transact_once(self, body: Callable[[], Tx[Any]]) -> Any:
        import asyncpg

        from eventstore.postgres_backend import lost_connection_errors

        lost = lost_connection_errors()

        def op_error(exc: BaseException) -> bool:
            # A lost connection is not the transaction's fault: never a handler's error.
            # A refused value is (nothing was sent: the coalesced path falls back).
            return isinstance(exc, _Refused) or (
                isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, lost)
            )

        async with self._pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
                value = await drive_async(
                    body, lambda request: self._perform(conn, request), op_error=op_error
                )
            except BaseException as exc:
                # Shielded: a cancelled transaction (Ctrl-C) is rolled back before
                # its connection goes back to the pool.
                with anyio.CancelScope(shield=True):
                    try:
                        await transaction.rollback()
                    except lost:
                        if isinstance(exc, Exception) and not isinstance(exc, lost):
                            raise
                    except Exception:
                        if isinstance(exc, Exception):
                            raise
                        # Cancelled mid-statement, the connection may be unusable;
                        # the pool discards it and the server rolls back.
                if isinstance(exc, lost):
                    raise
                if isinstance(exc, OpError | asyncpg.PostgresError):
                    raise ViewsStoreError(f"{self.location}: {exc}") from exc
                raise
            await transaction.commit()
            return value

    async def _perform(self, conn: Any, request: Any) -> Any:
        if isinstance(request, ApplyOps):
            return await self._apply_ops(conn, request)
        if isinstance(request, Fetch):
            return [tuple(r) for r in await conn.fetch(self._pg(request.sql), *request.params)]
        if isinstance(request, LoadRows):
            shape = request.layout
            key = ("load", request.table, _shape_key(shape))
            sql = self._cached(key, _pg_load_sql, request.table, shape)
            keys = _json_keys(request.keys, _column_types(shape, shape.key_index))
            return [tuple(r) for r in await conn.fetch(sql, keys)]
        if isinstance(request, WriteMany):
            await self._write_many(conn, request)
            return None
        if isinstance(request, ExecuteMany):
            await self._execute_many(conn, request)
            return None
        if isinstance(request, Script):
            # No parameters: the simple query protocol, every statement in one round trip.
            await conn.execute(";\n".join(request.statements))
            return None
        assert isinstance(request, Execute)
        return _rowcount(await conn.execute(self._pg(request.sql), *request.params))

    def _cached(self, key: Any, render: Callable[..., str], *args: Any) -> str:
        sql = self._render_cache.get(key)
        if sql is None:
            sql = self._render_cache[key] = render(*args)
        return sql

    async def _write_many(self, conn: Any, request: WriteMany) -> None:
        """A segment's coalesced rows: every table and kind of change in one statement.

        The rows go as JSON (one array of arrays per table and kind), not as a
        typed array per column through ``unnest``: asyncpg checks each array
        element with Python-level calls, which cost more than the server's JSON
        parse. Not COPY either: a backend killed mid-COPY left asyncpg a future
        whose error nobody retrieved (1 run in 10 of the reconnect test).
        A key that exists fails an insert, as it must.
        """
        parts: list[tuple[str, str, Layout]] = []
        params: list[str] = []
        for write in request.writes:
            shape = write.layout
            for kind, rows in (
                ("delete", write.deletes),
                ("update", write.updates),
                ("insert", write.inserts),
            ):
                if rows:
                    indexes = shape.key_index if kind == "delete" else range(len(shape.columns))
                    params.append(_json_rows(rows, _column_types(shape, indexes)))
                    parts.append((kind, write.table, shape))
        if parts:
            key = tuple((kind, table, _shape_key(shape)) for kind, table, shape in parts)
            sql = self._cached(key, _pg_write_many_sql, parts)
            await conn.execute(sql, *params)

    async def _execute_many(self, conn: Any, request: ExecuteMany) -> None:
        """A fold's rows (:mod:`projections.fold`): one statement a table, not one a row.

        The rows go as JSON, as a segment's coalesced writes do (see
        :meth:`_write_many`); a value of a type its column does not take is
        refused before anything is sent (the fold then fails and the chunk
        is applied event by event).
        """
        bulk = request.bulk
        if bulk is None:
            await conn.executemany(self._pg(request.sql), request.rows)
            return
        sql = self._cached(("bulk", bulk), _pg_bulk_sql, bulk)
        for part in _rounds(request.rows, bulk.key):
            await conn.execute(sql, _json_rows(part, bulk.types))

    async def _apply_ops(self, conn: Any, request: ApplyOps) -> tuple[int, str] | None:
        import asyncpg

        from eventstore.postgres_backend import lost_connection_errors

        lost = lost_connection_errors()
        tables = dict(request.tables)
        if not request.exact and self._literals_ok:
            try:
                script = self._script(request, tables)
            except _NotLiteral:
                pass
            else:
                try:
                    for part in script:
                        await conn.execute(part)
                except lost:
                    raise
                except asyncpg.PostgresError as exc:
                    return 0, str(exc)  # not exact: the caller redoes it with savepoints
                return None
        definitions = request.definitions or {}
        for index, ops in enumerate(request.events):
            try:
                for op in ops:
                    sql, params = op if type(op) is tuple else to_sql(op, definitions)  # type: ignore[arg-type]
                    await conn.execute(self._pg(sql.format_map(tables)), *params)
            except lost:
                raise  # a lost connection is no event's fault
            except asyncpg.PostgresError as exc:
                return index, str(exc)
        return None

    def _script(self, request: ApplyOps, tables: dict[str, str]) -> list[str]:
        """The batch's ops as multi-statement scripts: one round trip per 20,000 statements.

        The simple query protocol takes several statements at once but no
        bound parameters, so each is written with literal values. Rendering a
        template's table names is cached: a batch repeats a handful of them.
        """
        cache = self._render_cache
        parts: list[str] = []
        statements: list[str] = []
        definitions = request.definitions or {}
        for ops in request.events:
            for op in ops:
                sql, params = op if type(op) is tuple else to_sql(op, definitions)  # type: ignore[arg-type]
                key = (sql, request.tables)
                template = cache.get(key)
                if template is None:
                    template = cache[key] = sql.format_map(tables)
                statements.append(render_literal_sql(template, params))
                if len(statements) >= _SCRIPT_STATEMENTS:
                    parts.append(";\n".join(statements))
                    statements = []
        if statements:
            parts.append(";\n".join(statements))
        return parts

    async def read(self, body: Callable[[], Tx[Any]]) -> Any:
        """Run a generator of Fetch requests in one REPEATABLE READ snapshot.

        Run again on a fresh connection (up to four times) if the pooled one was lost.
        """
        return await self._retrying(self._read_once, body)

    async def _read_once(self, body: Callable[[], Tx[Any]]) -> Any:
        from eventstore.postgres_backend import lost_connection_errors

        passed: tuple[type[BaseException], ...] = (ViewsStoreError, *lost_connection_errors())
        try:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await drive_async(
                    body, lambda request: self._perform(conn, request), read_only=True
                )
        except passed:
            raise
        except Exception as exc:
            import asyncpg

            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise ViewsStoreError(f"{self.location}: {exc}") from exc
            raise

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One read query."""

        def body() -> Tx[list[tuple[Any, ...]]]:
            rows = yield Fetch(sql, tuple(params))
            return list(rows)

        result: list[tuple[Any, ...]] = await self.read(body)
        return result
