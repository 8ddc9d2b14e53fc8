"""Disks that are full, read-only or corrupt: every path says so, nothing is lost or moved wrongly.

Full disks are small tmpfs mounts and read-only storage a read-only bind mount
(both need root: skipped where mounting is not permitted); an unprivileged user
is played by running the CLI as ``nobody`` with ``setpriv``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from cli.main import cli
from eventstore import (
    NotAStoreError,
    ReadOnlyStoreError,
    RunDeleted,
    RunFinished,
    RunStarted,
    StoreCorruptError,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.sqlite_backend import LEDGER_FILE
from eventstore.sqlite_errors import sqlite_error_kind
from projections import VIEWS_FILE, ViewsBusyError, ViewsFullError, open_views
from projections.views import _set_aside
from projections.views_store import SQLiteViewsStore, views_error

ROOT = Path(__file__).resolve().parent.parent


def invoke(store: Path, *args: str, code: int = 0) -> Any:
    """Run the CLI on a store in-process; check the exit code; never a traceback."""
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    assert code == result.exit_code, (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _mount(args: list[str]) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(directory: Path, size: str = "4m") -> Iterator[Path]:
    """A small tmpfs at ``directory`` for the block (a disk that fills up)."""
    directory.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)])
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@contextlib.contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``target`` (a read-only bind mount)."""
    target.mkdir(parents=True, exist_ok=True)
    _mount(["--bind", str(source), str(target)])
    try:
        done = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path, leave: int) -> Path:
    """Fill the file system of ``directory`` until about ``leave`` bytes are free."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    filler = directory / "filler"
    assert free > leave, f"only {free} bytes free before filling"
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(0, free - leave))
    return filler


def new_runs(store_path: Path, runs: int) -> None:
    """Append ``runs`` started-and-finished runs (the views do not follow)."""

    async def main() -> None:
        async with open_store(store_path) as store:
            for start in range(0, runs, 100):
                batch = []
                for _ in range(min(100, runs - start)):
                    run_id = uuid.uuid4()
                    now = datetime.now(UTC)
                    batch.append(
                        (
                            f"run-{run_id}",
                            [
                                RunStarted(
                                    run_id=run_id,
                                    pipeline_name="p" * 100,
                                    run_name=f"r-{run_id}",
                                    started_at=now,
                                    tags=["t" * 50],
                                ),
                                RunFinished(run_id=run_id, status="completed", finished_at=now),
                            ],
                            "no_stream",
                        )
                    )
                await store.append_many(batch)

    anyio.run(main)


def demo_store(path: Path, demos: int = 1) -> None:
    """A store holding the demo's stack and ``demos`` demo runs."""

    async def main() -> None:
        async with open_store(path) as store:
            await ensure_default_stack(store, path / "artifacts")
            for _ in range(demos):
                await run_demo(store, artifact_root=path / "artifacts")

    anyio.run(main)


def unreadable_files(store: Path) -> list[Path]:
    return sorted(store.glob(f"{VIEWS_FILE}.unreadable-*"))


# -- error kinds ------------------------------------------------------------------


def test_sqlite_errors_are_classified_by_code_not_text(tmp_path: Path) -> None:
    """Real errors of each kind are told apart by their result code."""
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.Error) as full:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    assert "full" == sqlite_error_kind(full.value)
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.Error) as busy:
        other.execute("BEGIN IMMEDIATE")
    assert "busy" == sqlite_error_kind(busy.value)
    assert isinstance(views_error(str(db), busy.value), ViewsBusyError)
    conn.execute("ROLLBACK")
    (tmp_path / "junk.db").write_bytes(b"x" * 4096)
    with pytest.raises(sqlite3.Error) as notadb:
        sqlite3.connect(tmp_path / "junk.db").execute("SELECT * FROM sqlite_master")
    assert "notadb" == sqlite_error_kind(notadb.value)
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as readonly:
        ro.execute("INSERT INTO t VALUES (1)")
    assert "readonly" == sqlite_error_kind(readonly.value)
    # The message alone decides nothing: an error without a code is "other".
    assert "other" == sqlite_error_kind(sqlite3.OperationalError("database or disk is full"))


# -- full disks -------------------------------------------------------------------


def test_catch_up_on_a_full_disk_exits_6_and_keeps_the_views(tmp_path: Path) -> None:
    """A read whose catch-up cannot write views.db: store-full, exit 6; nothing set aside."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        store = disk / "s"
        invoke(store, "init")
        new_runs(store, 1200)
        filler = fill(disk, 160 << 10)
        result = invoke(store, "run", "list", code=6)
        assert "full" in result.output
        assert [] == unreadable_files(store)
        filler.unlink()
        runs = json.loads(invoke(store, "run", "list", "--limit", "2000", "--json").stdout)
        assert 1200 == len(runs)


def test_rebuild_on_a_full_disk_exits_6(tmp_path: Path) -> None:
    """`projections rebuild` with no room for the new tables: exit 6; the old ones serve on."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        store = disk / "s"
        invoke(store, "init")
        new_runs(store, 1200)
        invoke(store, "run", "list")
        filler = fill(disk, 160 << 10)
        result = invoke(store, "projections", "rebuild", "runs", code=6)
        assert "full" in result.output
        assert [] == unreadable_files(store)
        filler.unlink()
        runs = json.loads(invoke(store, "run", "list", "--limit", "2000", "--json").stdout)
        assert 1200 == len(runs)
        invoke(store, "projections", "rebuild", "runs")


def test_export_to_a_full_disk_exits_6_and_leaves_nothing(tmp_path: Path) -> None:
    """An export whose file fills the disk: exit 6, no partial file, no traceback."""
    store = tmp_path / "s"
    invoke(store, "init")
    new_runs(store, 600)
    with tmpfs(tmp_path / "disk", "128k") as disk:
        result = invoke(store, "export", str(disk / "backup.jsonl"), code=6)
        assert "disk is full" in result.output
        assert [] == sorted(p.name for p in disk.iterdir())


def test_replay_into_a_full_disk_exits_6_and_leaves_no_scratch(tmp_path: Path) -> None:
    """`replay --into` on a full disk: exit 6, and neither views.db nor its WAL is left."""
    store = tmp_path / "s"
    invoke(store, "init")
    new_runs(store, 1200)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        result = invoke(store, "replay", "--into", str(disk / "audit"), code=6)
        assert "full" in result.output
        assert [] == sorted(p.name for p in disk.iterdir())
        (disk / "kept").mkdir()
        invoke(store, "replay", "--into", str(disk / "kept"), code=6)
        assert [] == list((disk / "kept").iterdir())  # the user's directory stays


def test_a_full_disk_never_sets_the_views_aside(tmp_path: Path) -> None:
    """Views on a disk with no room at all: ViewsFullError, the file stays where it is."""
    # Room for the views of a new store (about 1.3 MB in 16 KiB pages) and its WAL.
    with tmpfs(tmp_path / "disk", "6m") as disk:
        views_path = disk / VIEWS_FILE

        async def main() -> None:
            async with open_store(tmp_path / "s") as store:
                await ensure_default_stack(store, tmp_path / "a")
                async with open_views(store, path=views_path) as views:
                    await views.catch_up()
                fill(disk, 0)
                with pytest.raises(ViewsFullError):
                    async with open_views(store, path=views_path) as views:
                        await views.catch_up()

        anyio.run(main)
        assert views_path.exists()
        assert [] == unreadable_files(disk)


# -- views set aside only when unreadable ------------------------------------------


def test_a_lock_held_elsewhere_never_sets_the_views_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding views.db exclusively: a busy error (exit 6), never a set-aside."""
    store = tmp_path / "s"
    demo_store(store)
    invoke(store, "run", "list")
    monkeypatch.setattr(
        SQLiteViewsStore.__init__,
        "__kwdefaults__",
        {**(SQLiteViewsStore.__init__.__kwdefaults__ or {}), "busy_timeout": 0.2},
    )
    holder = sqlite3.connect(store / VIEWS_FILE, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE views_meta SET value = value")
    try:
        result = invoke(store, "run", "list", code=6)
        assert "locked" in result.output
        assert [] == unreadable_files(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 1 == len(json.loads(invoke(store, "run", "list", "--json").stdout))


def test_two_set_asides_in_one_second_keep_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second unreadable file of the same second gets its own name; none is overwritten."""
    import projections.views

    monkeypatch.setattr(projections.views.time, "time", lambda: 1_800_000_000.0)
    path = tmp_path / VIEWS_FILE
    contents = []
    for n in range(3):
        content = f"garbage {n}".encode() * 100
        contents.append(content)
        path.write_bytes(content)
        Path(f"{path}-wal").write_bytes(content[:10])
        _set_aside(path)
    kept = unreadable_files(tmp_path)
    mains = [p for p in kept if not p.name.endswith(("-wal", "-shm"))]
    assert 3 == len(mains)
    assert sorted(contents) == sorted(p.read_bytes() for p in mains)
    assert 3 == len([p for p in kept if p.name.endswith("-wal")])
    assert not path.exists()


def _smash(database: Path, name: str) -> None:
    """Overwrite the root page of table ``name`` with garbage: 'disk image is malformed'."""
    conn = sqlite3.connect(database)
    root, page_size = conn.execute(
        "SELECT rootpage, (SELECT page_size FROM pragma_page_size()) FROM sqlite_master "
        "WHERE name = ?",
        (name,),
    ).fetchone()
    conn.close()
    with database.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xde\xad\xbe\xef" * (page_size // 4))


@pytest.mark.parametrize("table", ["runs_g1", "projection_state"])
def test_a_corrupt_page_in_the_views_is_rebuilt(tmp_path: Path, table: str) -> None:
    """A malformed page, found by a query or by the catch-up: set aside, rebuilt, answered."""
    store = tmp_path / "s"
    demo_store(store, demos=2)
    expected = json.loads(invoke(store, "run", "list", "--json").stdout)
    assert 2 == len(expected)
    _smash(store / VIEWS_FILE, table)
    again = json.loads(invoke(store, "run", "list", "--json").stdout)
    assert expected == again
    assert 1 == len([p for p in unreadable_files(store) if not p.name.endswith(("-wal", "-shm"))])
    invoke(store, "projections", "status")


# -- read-only storage ------------------------------------------------------------


def test_a_store_on_a_read_only_mount_is_read_verified_and_exported(tmp_path: Path) -> None:
    """A read-only mount: reads, verify and export work; a write names the read-only storage."""
    source = tmp_path / "src"
    demo_store(source / "s")
    expected = json.loads(invoke(source / "s", "run", "list", "--json").stdout)
    new_runs(source / "s", 5)  # the views on the mount are behind the log
    with read_only_view(source, tmp_path / "ro") as mount:
        store = mount / "s"
        before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
        runs = json.loads(invoke(store, "run", "list", "--json").stdout)
        assert len(expected) + 5 == len(runs)
        assert "chain intact" in invoke(store, "verify").output
        invoke(store, "export", str(tmp_path / "out.jsonl"))
        assert 0 < len((tmp_path / "out.jsonl").read_bytes().splitlines())
        result = invoke(store, "orchestrator", "register", "x", "--flavor", "local", code=1)
        assert "read-only storage" in result.output
        refused = invoke(store, "projections", "rebuild", code=1)
        assert "nothing to rebuild" in refused.output
        after = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
        assert before == after

        async def main() -> None:
            async with open_store(store, read_only=True) as opened:
                assert (await opened.verify()).ok
                with pytest.raises(ReadOnlyStoreError):
                    await opened.append("s", [RunDeleted(run_id=uuid.uuid4())])

        anyio.run(main)


def test_a_store_the_user_cannot_write_is_still_readable(tmp_path: Path) -> None:
    """Files readable but not writable by the user (run as `nobody`): read, verify, export."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(
        subprocess.run(
            ["mktemp", "-d", "/tmp/ml-ro-XXXXXX"], capture_output=True, text=True
        ).stdout.strip()
    )
    try:
        store = base / "s"
        demo_store(store)
        new_runs(store, 3)
        base.chmod(0o755)
        store.chmod(0o755)
        for item in store.iterdir():
            if item.is_file():
                item.chmod(0o644)
        out = base / "out"
        out.mkdir()
        out.chmod(0o777)
        env = {**os.environ, "HOME": str(out), "XDG_DATA_HOME": str(out)}

        def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-m", "cli", "--store", str(store), *args],
                capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
            )  # fmt: skip

        listed = as_nobody("run", "list", "--json")
        if (
            listed.returncode != 0
            and "Permission denied" in listed.stderr
            and "python" in (listed.stderr.lower())
        ):
            pytest.skip("the interpreter is not readable by nobody")
        assert 0 == listed.returncode, listed.stderr
        assert 4 == len(json.loads(listed.stdout))
        verified = as_nobody("verify")
        assert 0 == verified.returncode, verified.stderr
        exported = as_nobody("export", str(out / "x.jsonl"))
        assert 0 == exported.returncode, exported.stderr
        refused = as_nobody("orchestrator", "register", "x", "--flavor", "local")
        assert 1 == refused.returncode
        assert "read-only" in refused.stderr
        assert "Traceback" not in refused.stderr + exported.stderr + listed.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- damaged logs -----------------------------------------------------------------


def test_a_truncated_log_verifies_as_damaged_and_exports_its_readable_prefix(
    tmp_path: Path,
) -> None:
    """ledger.db cut in half: verify exits 5 at the damage; export salvages what is before it."""
    store = tmp_path / "s"
    demo_store(store, demos=6)
    path = store / LEDGER_FILE
    full = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(full // 2)
    before = path.read_bytes()
    result = invoke(store, "verify", "--json", code=5)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    bad = report["first_bad_position"]
    assert bad is not None
    assert bad > 1
    assert bad - 1 == report["events"]
    exported = invoke(store, "export", str(tmp_path / "salvage.jsonl"), code=5)
    assert "damaged" in exported.output
    lines = (tmp_path / "salvage.jsonl").read_bytes().splitlines()
    assert bad - 1 == len(lines)
    assert [json.loads(line)["position"] for line in lines] == list(range(1, bad))
    restored = tmp_path / "restored"
    invoke(restored, "import", str(tmp_path / "salvage.jsonl"))
    assert "chain intact" in invoke(restored, "verify").output
    refused = invoke(store, "orchestrator", "register", "x", "--flavor", "local", code=3)
    assert "damaged" in refused.output
    assert before == path.read_bytes()  # never written


def test_a_log_with_a_corrupt_page_is_damage_for_verify(tmp_path: Path) -> None:
    """A malformed page in ledger.db: verify exits 5 (damage); the API raises StoreCorruptError."""
    store = tmp_path / "s"
    demo_store(store, demos=6)
    _smash(store / LEDGER_FILE, "events")
    result = invoke(store, "verify", code=5)
    assert "damaged" in result.output

    async def main() -> None:
        with pytest.raises(StoreCorruptError):
            async with open_store(store) as opened:
                await opened.head()

    anyio.run(main)


def test_an_empty_ledger_file_is_refused_not_taken_over(tmp_path: Path) -> None:
    """A 0-byte ledger.db is not a store: exit 3, left as it is, nothing created beside it."""
    tmp_path.joinpath(LEDGER_FILE).write_bytes(b"")
    result = invoke(tmp_path, "run", "list", code=3)
    assert "empty" in result.output
    invoke(tmp_path, "init", code=3)

    async def main() -> None:
        with pytest.raises(NotAStoreError, match="empty"):
            async with open_store(tmp_path):
                pass

    anyio.run(main)
    assert b"" == tmp_path.joinpath(LEDGER_FILE).read_bytes()
    assert [LEDGER_FILE] == sorted(p.name for p in tmp_path.iterdir())
