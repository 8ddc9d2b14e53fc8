"""The SQLite views store's reads: short ones on the loop, long or failing ones on the thread."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from projections import SQLiteViewsStore, ViewsStoreError
from projections.transactions import Fetch, Tx

#: A query that runs far longer than the inline budget (a few hundred ms).
_SLOW_COUNT = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "SELECT count(*) FROM n"
)


@pytest.fixture
async def views(tmp_path: Path) -> AsyncIterator[SQLiteViewsStore]:
    """A file-backed views store with one small table."""
    store = SQLiteViewsStore(tmp_path / "views.db")
    await store.open()
    await store.transact(_fill)
    try:
        yield store
    finally:
        await store.close()


def _fill() -> Tx[None]:
    from projections.transactions import Execute

    yield Execute("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
    yield Execute("INSERT INTO numbers SELECT value FROM json_each('[1,2,3,4,5]')")


def _threads_of(sql: str, params: tuple[Any, ...], seen: list[int]) -> Any:
    def body() -> Tx[Any]:
        seen.append(threading.get_ident())
        rows = yield Fetch(sql, params)
        return rows

    return body


async def test_a_short_read_runs_on_the_loop_thread(views: SQLiteViewsStore) -> None:
    """A small query needs no thread hop: its body runs on the event loop's thread."""
    seen: list[int] = []
    rows = await views.read(_threads_of("SELECT sum(n) FROM numbers", (), seen))
    assert [(15,)] == rows
    assert [threading.get_ident()] == seen


async def test_a_read_over_budget_moves_to_the_read_thread_and_answers_whole(
    views: SQLiteViewsStore,
) -> None:
    """A long query is interrupted on the loop, then run again to completion on the thread."""
    seen: list[int] = []
    rows = await views.read(_threads_of(_SLOW_COUNT, (3_000_000,), seen))
    assert [(3_000_000,)] == rows
    assert 2 == len(seen), "the body should have started on the loop, then run on the thread"
    assert threading.get_ident() == seen[0]
    assert threading.get_ident() != seen[1]
    assert [(3_000_000,)] == await views.fetch(_SLOW_COUNT, (3_000_000,))


async def test_a_bad_query_still_raises_the_views_error(views: SQLiteViewsStore) -> None:
    """An SQL error met on the loop is reported as it always was (from the read thread)."""
    with pytest.raises(ViewsStoreError, match="no such table"):
        await views.fetch("SELECT * FROM no_such_table")
    with pytest.raises(ViewsStoreError, match="no such table"):
        await views.read(_threads_of("SELECT * FROM no_such_table", (), []))
    assert [(5,)] == await views.fetch("SELECT count(*) FROM numbers")


async def test_reads_after_close_raise(views: SQLiteViewsStore) -> None:
    """A closed store answers no reads, on either path."""
    await views.close()
    with pytest.raises(ViewsStoreError, match="closed"):
        await views.fetch("SELECT 1")


async def test_checkpoints_run_beside_the_commits(views: SQLiteViewsStore) -> None:
    """The writer's COMMITs never checkpoint: once enough rows were written, a PASSIVE
    checkpoint runs on a thread of its own, and closing stops that thread."""
    from projections.transactions import Execute, ExecuteMany
    from projections.views_store import CHECKPOINT_ROWS

    def write() -> Tx[Any]:
        rows = yield Fetch("PRAGMA wal_autocheckpoint")
        yield Execute("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT NOT NULL)")
        yield ExecuteMany(
            "INSERT INTO t (n, s) VALUES (?, ?)",
            [(n, "x" * 100) for n in range(CHECKPOINT_ROWS + 1)],
        )
        return rows[0][0]

    assert 0 == await views.transact(write)
    running = views._checkpoint_running
    assert running is not None
    running.result(timeout=30)

    # Only a checkpoint moves pages from the WAL into the file itself.
    assert views.path is not None
    assert views.path.stat().st_size > CHECKPOINT_ROWS * 100
    await views.close()
    names = [thread.name for thread in threading.enumerate()]
    assert not any(name.startswith("metaledger-views-checkpoint") for name in names)
    assert [(CHECKPOINT_ROWS + 1,)] == await _count(views.path)


async def _count(path: Path | None) -> Any:
    import sqlite3

    assert path is not None
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchall()
    finally:
        conn.close()


async def test_the_wal_starts_again_under_steady_writes(views: SQLiteViewsStore) -> None:
    """Transactions back to back still let the WAL restart: its file stays small.

    A checkpoint beside the commits rarely sees every frame copied, which
    SQLite needs before it writes the WAL from its beginning again; the writer
    finishes each background checkpoint before its next transaction.
    """
    from projections.transactions import Execute, ExecuteMany
    from projections.views_store import CHECKPOINT_ROWS

    assert views.path is not None
    wal = views.path.with_name(views.path.name + "-wal")
    rows_each, text = CHECKPOINT_ROWS // 4, "x" * 200

    def create() -> Tx[None]:
        yield Execute("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT NOT NULL)")

    def write(start: int) -> Tx[None]:
        yield ExecuteMany(
            "INSERT INTO t (n, s) VALUES (?, ?)",
            [(n, text) for n in range(start, start + rows_each)],
        )

    await views.transact(create)
    largest, batches = 0, 80
    for batch in range(batches):
        await views.transact(lambda batch=batch: write(batch * rows_each))
        largest = max(largest, wal.stat().st_size)
    written = batches * rows_each * len(text)
    # A WAL that never starts again holds everything written (more, with its
    # frame headers: the check fails without the writer's finishing step); one
    # that does stays a few checkpoints' worth, more on a loaded machine where
    # checkpoints run late (a bound of a fifth failed about one run in five).
    assert largest < written // 2, (largest, written)
