"""The PostgreSQL part of the benchmark (``python -m benchmarks.bench --postgres URI``).

It measures, in one run against the same server:

- the floor: raw asyncpg, one transaction, ``copy_records_to_table`` of N rows of
  exactly the store's row shape into a fresh copy of the log table (the median
  of three, each into a table of its own);
- 50 concurrent emitters, each appending one event at a time and awaiting it,
  through ``open_store`` (durable: ``synchronous_commit`` on, the server default);

and reports the emitters' rate as a ratio to the floor (target >= 0.3), with
their latency; then a first catch-up of fresh views on a store of run
lifecycles (the SQLite benchmark's workload), as a ratio to the same floor
(target >= 0.2): the median of three, each on a store of its own, caught up
right after its fill. For transparency it also measures floor PG': the same rows,
raw asyncpg again, but committed durably 50 rows per transaction (one
``INSERT ... SELECT FROM unnest`` each), which is the commit size the store's
group commit makes for 50 emitters. Every schema it creates is dropped at the end.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio

from eventstore.chain import GENESIS_HASH, chain_hash
from eventstore.codec import EventCodec, encode_metadata
from eventstore.envelope import Metadata, NewEvent, datetime_from_us
from eventstore.events import StepFinished
from eventstore.ids import new_event_id
from eventstore.postgres_backend import split_dsn
from eventstore.store import open_store

__all__ = ["PostgresFigures", "run_postgres_benchmark"]


class PostgresFigures(dict[str, Any]):
    """The measured figures, by name."""


def _event() -> StepFinished:
    return StepFinished(
        run_id=uuid.uuid4(),
        step_run_id=uuid.uuid4(),
        status="completed",
        finished_at=datetime.now(UTC),
    )


def _rows(count: int, streams: int) -> list[tuple[Any, ...]]:
    codec = EventCodec()
    metadata = encode_metadata(Metadata(actor="bench", host="bench", pid=1))
    previous = GENESIS_HASH
    now_us = time.time_ns() // 1000
    stream_ids = [f"run-{uuid.uuid4()}" for _ in range(streams)]
    rows = []
    for position in range(1, count + 1):
        tag, version, data = codec.encode(_event())
        event_id = new_event_id()
        stream_id = stream_ids[position % streams]
        stream_version = position // streams + 1
        previous = chain_hash(
            previous, position, event_id, stream_id, stream_version, tag, version, now_us,
            metadata, data,
        )  # fmt: skip
        rows.append(
            (
                position,
                uuid.UUID(event_id),
                stream_id,
                stream_version,
                tag,
                version,
                datetime_from_us(now_us),
                metadata,
                data,
                previous,
            )
        )
    return rows


#: Times each of the floor and the catch-up is measured; the median is reported.
#: Measured once, floor PG moved from 107,821 to 168,187 rows/s between two full
#: runs minutes apart (eighth session), which moved the ratios more than the code.
ROUNDS = 3


async def _floor(dsn: str, schema: str, rows: list[tuple[Any, ...]]) -> float:
    """Rows/s of one COPY of ``rows`` into a fresh copy of the log table (median of ROUNDS)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    rates: list[float] = []
    try:
        for round_ in range(ROUNDS):
            table = f"floor{round_}"
            await conn.execute(
                f"CREATE TABLE {schema}.{table} (LIKE {schema}.events INCLUDING ALL)"
            )
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(
                    table,
                    schema_name=schema,
                    records=rows,
                    columns=[
                        "position", "event_id", "stream_id", "stream_version", "type",
                        "schema_version", "recorded_at", "metadata", "data", "hash",
                    ],
                )  # fmt: skip
            rates.append(len(rows) / (time.perf_counter() - started))
        return statistics.median(rates)
    finally:
        await conn.close()


async def _floor_at_commit_size(
    dsn: str, schema: str, rows: list[tuple[Any, ...]], per_commit: int
) -> float:
    """Rows/s of raw asyncpg committing ``per_commit`` rows per durable transaction."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"CREATE TABLE {schema}.floor_commits (LIKE {schema}.events INCLUDING ALL)"
        )
        insert = (
            f"INSERT INTO {schema}.floor_commits SELECT * FROM unnest($1::bigint[], $2::uuid[], "
            "$3::text[], $4::bigint[], $5::text[], $6::int[], $7::timestamptz[], $8::bytea[], "
            "$9::bytea[], $10::bytea[])"
        )
        started = time.perf_counter()
        for offset in range(0, len(rows), per_commit):
            # One statement outside a transaction block: its own durable commit.
            await conn.execute(insert, *zip(*rows[offset : offset + per_commit], strict=True))
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def _emitters(uri: str, tasks: int, per_task: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with open_store(uri, default_stack=False) as store:
        await store.append("warm-up", [_event()])

        async def emit() -> None:
            stream = f"run-{uuid.uuid4()}"
            for _ in range(per_task):
                started = time.perf_counter()
                await store.append(stream, [NewEvent(_event())])
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(tasks):
                group.start_soon(emit)
        elapsed = time.perf_counter() - started
    return tasks * per_task / elapsed, latencies


#: The schemas of a store with schema prefix p: p_ledger and p_views.
_PARTS = ("ledger", "views")


async def _views_catch_up(uri: str, runs: int) -> tuple[int, float]:
    """Events and seconds of a first catch-up of fresh views on a store of ``runs`` lifecycles."""
    from benchmarks.bench import fill_lifecycle_store  # the same workload as SQLite's
    from projections import open_views

    await fill_lifecycle_store(uri, runs)
    async with open_store(uri, create=False) as store:
        started = time.perf_counter()
        async with open_views(store, fresh=False) as views:
            head = await views.catch_up()
        return head, time.perf_counter() - started


async def run_postgres_benchmark(dsn: str, *, events: int = 20_000) -> PostgresFigures:
    """Measure the floor and the 50 emitters against ``dsn``; drop what was created."""
    import asyncpg

    server, _ = split_dsn(dsn)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    uri = f"{server}?schema_prefix={prefix}"
    figures = PostgresFigures()
    try:
        async with open_store(uri, default_stack=False):
            pass  # creates the schema and the log table the floor copies
        rows = _rows(events, 50)
        figures["floor_rows_per_s"] = await _floor(server, f"{prefix}_ledger", rows)
        figures["floor_50_per_commit_rows_per_s"] = await _floor_at_commit_size(
            server, f"{prefix}_ledger", rows, 50
        )
        rate, latencies = await _emitters(uri, 50, events // 50)
        figures["emitters_events_per_s"] = rate
        figures["ratio"] = rate / figures["floor_rows_per_s"]
        latencies.sort()
        figures["p50_ms"] = statistics.median(latencies) * 1000
        figures["p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
        figures["events"] = events
        # Each round on a store of its own, its views caught up right after its fill.
        rounds = [
            await _views_catch_up(f"{server}?schema_prefix={prefix}r{n}", events // 10)
            for n in range(ROUNDS)
        ]
        figures["views_events"] = rounds[0][0]
        figures["views_events_per_s"] = statistics.median(
            caught / seconds for caught, seconds in rounds
        )
    finally:
        conn = await asyncpg.connect(server)
        try:
            prefixes = [prefix, *(f"{prefix}r{n}" for n in range(ROUNDS))]
            for schema in (f"{p}_{part}" for p in prefixes for part in _PARTS):
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()
    return figures


if __name__ == "__main__":
    import sys

    from eventstore.logs import configure_logging

    configure_logging()
    result = anyio.run(run_postgres_benchmark, sys.argv[1])
    for name, value in result.items():
        print(f"{name:24} {value:,.2f}")
