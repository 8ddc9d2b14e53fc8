"""The SQLite backend: the backend contract, plus what only a file can show."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

import eventstore.log
from eventstore import (
    EventStore,
    NotAStoreError,
    RunDeleted,
    StoreNotFoundError,
    open_store,
)
from eventstore.sqlite_backend import LEDGER_FILE

from .backend_contract import BackendContract, tombstone


class TestSQLiteBackend(BackendContract):
    """The contract, on SQLite files."""

    __test__ = True

    def store_uri(self, tmp_path: Path, name: str = "store") -> str:
        """A fresh directory under the test's tmp_path."""
        return str(tmp_path / name)


async def _filled(path: Path, count: int = 10) -> None:
    async with open_store(path) as store:
        for i in range(count):
            await store.append(f"s{i % 3}", [tombstone(str(i))])


def _tamper(path: Path, *statements: str) -> None:
    """Edit the log file behind the store's back, as an attacker or a bad disk would."""
    conn = sqlite3.connect(path / LEDGER_FILE, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


class TestVerifyFindsTampering:
    """verify reports the first bad position of a log edited on disk."""

    async def test_edited_data_byte(self, tmp_path: Path) -> None:
        """Flipping one byte of one event's payload is found at that position."""
        await _filled(tmp_path)
        conn = sqlite3.connect(tmp_path / LEDGER_FILE)
        data = bytearray(conn.execute("SELECT data FROM events WHERE position = 6").fetchone()[0])
        conn.close()
        data[-1] ^= 0x01
        _tamper(tmp_path, f"UPDATE events SET data = x'{data.hex()}' WHERE position = 6")
        async with open_store(tmp_path) as store:
            report = await store.verify()
        assert not report.ok
        assert report.first_bad_position == 6
        assert "hash" in (report.reason or "")

    async def test_deleted_row(self, tmp_path: Path) -> None:
        """A deleted event is found as the missing position."""
        await _filled(tmp_path)
        _tamper(tmp_path, "DELETE FROM events WHERE position = 4")
        async with open_store(tmp_path) as store:
            report = await store.verify()
        assert not report.ok
        assert report.first_bad_position == 4
        assert "missing" in (report.reason or "")

    async def test_swapped_rows(self, tmp_path: Path) -> None:
        """Two events swapped (contents moved between positions) are found at the first."""
        await _filled(tmp_path)
        columns = (
            "event_id, stream_id, stream_version, type, schema_version, recorded_at, "
            "metadata, data, hash"
        )
        _tamper(
            tmp_path,
            f"CREATE TEMP TABLE a AS SELECT {columns} FROM events WHERE position = 3",
            f"CREATE TEMP TABLE b AS SELECT {columns} FROM events WHERE position = 7",
            "DELETE FROM events WHERE position IN (3, 7)",
            f"INSERT INTO events (position, {columns}) SELECT 3, * FROM b",
            f"INSERT INTO events (position, {columns}) SELECT 7, * FROM a",
        )
        async with open_store(tmp_path) as store:
            report = await store.verify()
        assert not report.ok
        assert report.first_bad_position == 3

    async def test_log_is_append_only_at_the_sql_level(self, tmp_path: Path) -> None:
        """Triggers refuse UPDATE and DELETE on the log, even from other tools."""
        await _filled(tmp_path, 2)
        conn = sqlite3.connect(tmp_path / LEDGER_FILE)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET type = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events")
        conn.close()


class TestOpening:
    """Opening creates a store with no set-up and refuses what is not one."""

    async def test_creates_directory_wal_and_private_modes(self, tmp_path: Path) -> None:
        """A new store is a 0700 directory with a 0600 WAL-mode log file."""
        path = tmp_path / "nested" / "store"
        async with open_store(path) as store:
            await store.append("s", [tombstone()])
        assert path.stat().st_mode & 0o777 == 0o700
        assert (path / LEDGER_FILE).stat().st_mode & 0o777 == 0o600
        conn = sqlite3.connect(path / LEDGER_FILE)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()

    async def test_default_location_and_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No URI opens $METALEDGER_STORE; sqlite:/// URIs name a directory too."""
        monkeypatch.setenv("METALEDGER_STORE", str(tmp_path / "env-store"))
        async with open_store(default_stack=False) as store:
            await store.append("s", [tombstone()])
        assert (tmp_path / "env-store" / LEDGER_FILE).exists()
        async with open_store(f"sqlite:///{tmp_path / 'env-store'}") as store:
            assert await store.head() == 1
        async with open_store(tmp_path / "env-store" / LEDGER_FILE) as store:
            assert await store.head() == 1

    async def test_missing_store_without_create(self, tmp_path: Path) -> None:
        """create=False on a missing store raises StoreNotFoundError and creates nothing."""
        with pytest.raises(StoreNotFoundError, match="metaledger init"):
            async with open_store(tmp_path / "nothing", create=False):
                pass
        assert not (tmp_path / "nothing").exists()

    @pytest.mark.parametrize(
        "content",
        [b"just some text, not a database" * 10, b"SQLite format 3\x00" + b"\x00" * 20],
        ids=["random-file", "truncated-sqlite"],
    )
    async def test_foreign_log_file_is_refused_untouched(
        self, tmp_path: Path, content: bytes
    ) -> None:
        """A ledger.db that is not a SQLite database is refused by name and left as it was."""
        tmp_path.joinpath(LEDGER_FILE).write_bytes(content)
        with pytest.raises(NotAStoreError, match=LEDGER_FILE):
            async with open_store(tmp_path):
                pass
        assert content == tmp_path.joinpath(LEDGER_FILE).read_bytes()

    async def test_other_applications_database_is_refused_untouched(self, tmp_path: Path) -> None:
        """A SQLite database of another application is refused and not modified."""
        conn = sqlite3.connect(tmp_path / LEDGER_FILE)
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        conn.close()
        before = tmp_path.joinpath(LEDGER_FILE).read_bytes()
        with pytest.raises(NotAStoreError, match="another application"):
            async with open_store(tmp_path):
                pass
        assert before == tmp_path.joinpath(LEDGER_FILE).read_bytes()
        assert not tmp_path.joinpath(LEDGER_FILE + "-wal").exists()

    @pytest.mark.parametrize("content", [b"hello", b""], ids=["random", "empty"])
    async def test_store_path_that_is_a_file(self, tmp_path: Path, content: bytes) -> None:
        """A store path naming a regular file (random or empty) is refused with its name."""
        target = tmp_path / "afile"
        target.write_bytes(content)
        with pytest.raises(NotAStoreError, match="afile"):
            async with open_store(target):
                pass
        assert content == target.read_bytes()

    async def test_durability_normal_option(self, tmp_path: Path) -> None:
        """durability='normal' opens with synchronous=NORMAL; the default is FULL.

        Read from the writer's connection itself: what ``info`` reports is only
        what the backend was asked for.
        """

        def synchronous(store: EventStore) -> int:
            backend: Any = store.backend
            with backend._writer_busy:
                return int(backend._writer_conn().execute("PRAGMA synchronous").fetchone()[0])

        async with open_store(tmp_path / "a") as store:
            assert (await store.info())["synchronous"] == "FULL"
            assert 2 == synchronous(store)  # FULL
        async with open_store(tmp_path / "b", durability="normal", default_stack=False) as store:
            assert (await store.info())["synchronous"] == "NORMAL"
            await store.append("s", [RunDeleted(run_id=uuid.uuid4())])
            assert (await store.info())["events"] == 1
            assert 1 == synchronous(store)  # NORMAL


async def test_a_long_replay_reads_lean_until_its_reader_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past two chunks nobody looked into, read_all fetches lean rows; a look fetches whole ones.

    The look at an event of a lean chunk loads that chunk's rows once, and later
    chunks are read whole again.
    """
    monkeypatch.setattr(eventstore.log, "READ_ALL_CHUNK", 5)
    monkeypatch.setattr(eventstore.log, "READ_ALL_LEAN_CHUNK", 5)
    async with open_store(tmp_path / "s", default_stack=False) as store:
        await store.append("bulk", [tombstone(str(i)) for i in range(40)])
        calls: dict[str, int] = {"span": 0, "lean": 0, "whole": 0, "sync": 0}
        backend = store.backend
        for name, method in (
            ("span", "read_lean_span"),
            ("lean", "read_lean_rows"),
            ("whole", "read_rows"),
            ("sync", "rows_between_sync"),
        ):
            original = getattr(backend, method)

            def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
                calls[_name] += 1
                return _original(*args)

            monkeypatch.setattr(backend, method, counted)
        read = [e async for e in store.read_all()]
        # 8 chunks: 2 whole, 6 lean spans; then an empty span and the end read with positions
        assert calls == {"span": 7, "lean": 1, "whole": 2, "sync": 0}
        assert read[12].stream_id == "bulk"  # chunk 3: its rows are loaded now
        assert read[13].stream_version == 14
        assert calls["sync"] == 1
        calls.update(span=0, lean=0, whole=0)
        async for event in store.read_all():
            if event.position == 13:
                assert event.stream_version == 13
        assert calls == {"span": 1, "lean": 0, "whole": 8, "sync": 2}


async def test_a_lean_replay_over_a_gap_in_positions_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lean span that a gap leaves short is read again with positions: nothing shifts.

    The log is gapless by construction; a file written otherwise (here with raw
    sqlite3) must still read back at its stored positions, looked at or not.
    """
    monkeypatch.setattr(eventstore.log, "READ_ALL_CHUNK", 5)
    monkeypatch.setattr(eventstore.log, "READ_ALL_LEAN_CHUNK", 5)
    path = tmp_path / "s"
    async with open_store(path, default_stack=False) as store:
        await store.append("bulk", [tombstone(str(i)) for i in range(28)])
    conn = sqlite3.connect(path / LEDGER_FILE)
    with conn:
        last = conn.execute("SELECT * FROM events WHERE position = 28").fetchone()
        for offset, position in enumerate((33, 40, 41, 42, 43, 44, 45, 46, 52)):
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (position, str(uuid.uuid4()), "late", offset + 1, *last[4:]),
            )
    conn.close()
    async with open_store(path, create=False) as store:
        stored = {row.position: row async for row in store.read_stored()}
        untouched = [e async for e in store.read_all()]
        watched = []
        async for event in store.read_all():
            if event.position == 42:
                assert event.stream_version == 4
            watched.append(event)
        tail = [e async for e in store.read_all(12, to_position=45)]
        limited = [e.position async for e in store.read_all(2, limit=33)]
    assert [*range(1, 29), 33, *range(40, 47), 52] == [e.position for e in untouched]
    assert [e.position for e in watched] == [e.position for e in untouched]
    assert [p for p in stored if 12 <= p <= 45] == [e.position for e in tail]
    assert [p for p in stored if p >= 2][:33] == limited
    for event in [*untouched, *watched, *tail]:
        row = stored[event.position]
        assert (event.event_id_text, event.stream_id, event.stream_version, event.hash) == (
            row.event_id,
            row.stream_id,
            row.stream_version,
            row.hash,
        )
