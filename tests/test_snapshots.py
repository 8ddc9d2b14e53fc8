"""The live views' snapshots for as-of are copied beside the writes, not inside them.

A copy runs on a thread and connection of the views store's own, in one read
transaction of the WAL: the views' writer commits meanwhile. These tests hold
a copy at the point where its read transaction is open (a gate in a subclass
of ``ViewSnapshots``) and look at what goes on around it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from eventstore import open_store
from eventstore.demo import run_demo
from projections import SQLiteViewsStore, default_projections, open_views
from projections.snapshots import ViewSnapshots
from projections.transactions import Execute, Tx

WAIT = 30.0
SNAPSHOT_THREAD = "metaledger-views-snapshot"


class GatedSnapshots(ViewSnapshots):
    """Snapshots whose copy waits at a gate once its read transaction is open."""

    def __init__(self, views_path: Path, gate: Callable[[threading.Event | None], object]) -> None:
        super().__init__(views_path, min_spacing=1)
        self.gate = gate
        self.copying = threading.Event()

    def _copy(
        self,
        source: sqlite3.Connection,
        versions: Mapping[str, int] | None,
        stop: threading.Event | None,
    ) -> tuple[Path, int | None] | None:
        self.copying.set()
        self.gate(stop)
        return super()._copy(source, versions, stop)


def _versions() -> dict[str, int]:
    return {p.name: p.version for p in default_projections()}


def _snapshot_files(snapshots: ViewSnapshots) -> list[str]:
    return sorted(os.listdir(snapshots.directory)) if snapshots.directory.exists() else []


def _positions_in(path: Path) -> set[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT position FROM projection_state")}
    finally:
        conn.close()


def _snapshot_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(SNAPSHOT_THREAD)]


async def test_writes_go_on_while_a_snapshot_is_copied(tmp_path: Path) -> None:
    """A catch-up commits while a snapshot's copy holds its read transaction, and the
    snapshot holds the views as they were when it began, named by that position."""
    release = threading.Event()
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        live = views.runner.views
        assert isinstance(live, SQLiteViewsStore)
        assert live.path is not None
        snapshots = GatedSnapshots(live.path, lambda _: release.wait(WAIT))
        views.runner.snapshots = snapshots
        await run_demo(store, artifact_root=tmp_path / "a")
        first = await views.catch_up()
        try:
            assert await anyio.to_thread.run_sync(snapshots.copying.wait, WAIT)
            # One copy at a time: none starts while this one runs.
            assert not live.start_snapshot(snapshots, _versions())
            await run_demo(store, artifact_root=tmp_path / "a")
            with anyio.fail_after(WAIT):
                second = await views.catch_up()
            assert second > first
            assert set(views.runner.positions().values()) == {second}
        finally:
            release.set()
        assert first == await live.wait_snapshot()
        assert [first] == snapshots.positions()
        assert {first} == _positions_in(snapshots.path_at(first))


async def test_closing_during_a_copy_leaves_no_partial_file_and_no_thread(
    tmp_path: Path,
) -> None:
    """Closing the views while a snapshot is copied stops the copy: no snapshot, no
    partial file, no snapshot thread, and the WAL is gone with the last connection."""
    snapshots: GatedSnapshots | None = None
    async with open_store(tmp_path / "s") as store:
        async with open_views(store) as views:
            live = views.runner.views
            assert isinstance(live, SQLiteViewsStore)
            assert live.path is not None
            # The copy goes on once the close has asked it to stop.
            snapshots = GatedSnapshots(live.path, lambda stop: stop is not None and stop.wait(WAIT))
            views.runner.snapshots = snapshots
            await run_demo(store, artifact_root=tmp_path / "a")
            await views.catch_up()
            assert await anyio.to_thread.run_sync(snapshots.copying.wait, WAIT)
            assert _snapshot_threads()
            with anyio.fail_after(WAIT):
                await live.close()
        assert [] == _snapshot_files(snapshots)
        assert [] == _snapshot_threads()
        assert not Path(f"{live.path}-wal").exists()


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE projection_state SET position = position - 1 WHERE name = 'runs'",
        "UPDATE projection_state SET pending_generation = generation + 1, pending_version = "
        "version, pending_position = 0 WHERE name = 'stacks'",
        "UPDATE projection_state SET status = 'failed' WHERE name = 'artifacts'",
    ],
    ids=["lagging", "rebuild-pending", "failed"],
)
async def test_a_copy_of_views_not_live_at_one_position_is_not_kept(
    tmp_path: Path, change: str
) -> None:
    """Views where some projection lags, is being rebuilt or failed leave no snapshot
    (and no partial file): an as-of from it would show a state that never was."""
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        live = views.runner.views
        assert isinstance(live, SQLiteViewsStore)
        assert live.path is not None
        await run_demo(store, artifact_root=tmp_path / "a")
        await views.catch_up()
        await live.transact(lambda: _execute(change))
        snapshots = ViewSnapshots(live.path, min_spacing=1)
        assert live.start_snapshot(snapshots, _versions())
        assert await live.wait_snapshot() is None
        assert [] == _snapshot_files(snapshots)


def _execute(sql: str) -> Tx[None]:
    yield Execute(sql)


async def test_a_failed_snapshot_only_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot that cannot be written (its directory is a file) logs a warning;
    the views go on."""
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        live = views.runner.views
        assert isinstance(live, SQLiteViewsStore)
        assert live.path is not None
        snapshots = ViewSnapshots(live.path, min_spacing=1)
        snapshots.directory.write_text("not a directory")
        views.runner.snapshots = snapshots
        await run_demo(store, artifact_root=tmp_path / "a")
        with caplog.at_level(logging.WARNING, logger="projections"):
            head = await views.catch_up()
            assert await live.wait_snapshot() is None
        events = [getattr(r, "metaledger", {}).get("event") for r in caplog.records]
        assert ["views_snapshot_failed"] == events
        assert set(views.runner.positions().values()) == {head}


async def test_a_partial_copy_of_a_process_that_died_is_removed(tmp_path: Path) -> None:
    """A partial file left by a process killed while copying goes with the next snapshot;
    one of a process still running stays."""
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        live = views.runner.views
        assert isinstance(live, SQLiteViewsStore)
        assert live.path is not None
        snapshots = ViewSnapshots(live.path, min_spacing=1)
        snapshots.directory.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        orphan = snapshots.directory / f"partial-{int(done.stdout)}-x1.db"
        ours = snapshots.directory / f"partial-{os.getpid()}-x2.db"
        orphan.write_bytes(b"")
        ours.write_bytes(b"")
        await run_demo(store, artifact_root=tmp_path / "a")
        head = await views.catch_up()
        assert head == await live.take_snapshot(snapshots, _versions())
        assert [f"at-{head}.db", ours.name] == _snapshot_files(snapshots)
