"""Ctrl-C (SIGINT) during import, copy, projections rebuild and a read's catch-up.

Each command runs as a user runs it, with stderr on a pseudo-terminal so that
it draws its progress bar: the test waits for the bar (the work is under way),
then for a few more redraws (a different point each try), and sends SIGINT.
The process must exit 130 (or 0 when the work had committed), never crash
(139, a connection closed under a running statement), and leave the store
intact: the log verifies and the views equal a fresh replay.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import anyio
import pytest

from benchmarks.bench import fill_lifecycle_store
from eventstore import open_store
from projections import SQLiteViewsStore, default_projections, open_views, views_as_of
from projections.transactions import Execute, Tx

from .histories import dump

pytestmark = pytest.mark.slow

#: Runs of about ten events: over the 20,000 events that draw a catch-up or copy bar.
RUNS = 2100
#: SIGINTs per command, each a few redraws later than the one before.
TRIES = 5
#: Bound on every wait for a child (the progress bar, the exit).
TIMEOUT = 120.0
METALEDGER = [sys.executable, "-m", "cli"]


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store over the progress-bar thresholds, and its export (both read-only to tests)."""
    root = tmp_path_factory.mktemp("interrupts")
    store = root / "store"
    anyio.run(fill_lifecycle_store, store, RUNS)
    export = root / "export.jsonl"
    subprocess.run(
        [*METALEDGER, "--store", str(store), "export", str(export)], check=True, timeout=TIMEOUT
    )
    return store, export


def _interrupt(args: list[str], store: Path, marker: bytes, redraws: int) -> tuple[int, str, str]:
    """Run ``metaledger --store STORE ARGS``, SIGINT it ``redraws`` redraws after its progress
    bar named ``marker`` shows; return its exit code, stdout and stderr."""
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [*METALEDGER, "--store", str(store), *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(slave)
    seen = b""
    signalled = False
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            assert time.monotonic() < deadline, f"{args} did not finish: {seen[-500:]!r}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal: it exited
                    break
                if not chunk:
                    break
                seen += chunk
                at = seen.find(marker)
                if not signalled and at >= 0 and seen.count(b"\r", at) >= redraws:
                    child.send_signal(signal.SIGINT)
                    signalled = True
            elif child.poll() is not None:
                break
        out, _ = child.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
        if child.poll() is None:
            child.kill()
            child.wait()
    # The first try signals as soon as the bar shows, so it must have signalled; a later
    # try may find the work done before its later redraw (catching up got faster), and
    # then the command simply finished: _assert_exit and the checks still judge it.
    assert signalled or (redraws > 0 and marker in seen), (
        f"{args}: no {marker!r} progress bar: {seen[-500:]!r}"
    )
    err = seen.decode(errors="replace")
    return child.returncode, out.decode(), err


def _verify(store: Path) -> None:
    result = subprocess.run(
        [*METALEDGER, "--store", str(store), "verify"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


async def _assert_views_equal_replay(store: Path) -> None:
    projections = default_projections()
    async with open_store(store, create=False) as opened:
        async with open_views(opened) as views:
            await views.catch_up()
            live = await dump(views.views_store, projections)
        async with views_as_of(opened) as replayed:
            fresh = await dump(replayed.views_store, projections)
    assert live == fresh


def _assert_exit(code: int, out: str, err: str) -> None:
    assert code in (0, 130), f"exit {code}: {err[-800:]}"
    if code == 130:
        assert "Interrupted" in err, err[-800:]
        assert "Traceback" not in err, err[-800:]
    else:
        assert out.strip(), err[-800:]


def _copy_of(store: Path, into: Path) -> Path:
    shutil.copytree(store, into)
    return into


async def _head(store: Path) -> int:
    async with open_store(store, create=False) as opened:
        head: int = await opened.head()
    return head


def test_ctrl_c_during_a_rebuild(big_store: tuple[Path, Path], tmp_path: Path) -> None:
    """`projections rebuild` interrupted at several points: 130 (or 0), store and views intact."""
    store = _copy_of(big_store[0], tmp_path / "store")
    for redraws in range(TRIES):
        code, out, err = _interrupt(["projections", "rebuild"], store, b"rebuilding", redraws)
        _assert_exit(code, out, err)
        _verify(store)
    anyio.run(_assert_views_equal_replay, store)


def test_ctrl_c_during_a_reads_catch_up(big_store: tuple[Path, Path], tmp_path: Path) -> None:
    """A read catching up fresh views, interrupted: 130, then the next read is correct."""
    store = _copy_of(big_store[0], tmp_path / "store")
    for redraws in range(TRIES):
        for leftover in store.glob("views.db*"):
            # views.db.snapshots is a directory (the as-of snapshots); the rest are files.
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        code, out, err = _interrupt(["run", "list"], store, b"catching up", redraws)
        _assert_exit(code, out, err)
        _verify(store)
    anyio.run(_assert_views_equal_replay, store)


def test_ctrl_c_during_an_import(big_store: tuple[Path, Path], tmp_path: Path) -> None:
    """An import interrupted: nothing imported and exit 130, or all of it and exit 0."""
    export = big_store[1]
    head = anyio.run(_head, big_store[0])
    for redraws in range(TRIES):
        store = tmp_path / f"imported{redraws}"
        code, out, err = _interrupt(["import", str(export)], store, b"importing", redraws)
        _assert_exit(code, out, err)
        imported = anyio.run(_head, store)
        if code == 130:
            assert "Nothing was imported" in err, err[-800:]
            assert 0 == imported
        else:
            assert head == imported
        _verify(store)


def test_ctrl_c_during_a_copy(big_store: tuple[Path, Path], tmp_path: Path) -> None:
    """A copy interrupted: 130 and a message saying how far it got; running it again resumes."""
    source = big_store[0]
    for redraws in range(TRIES):
        target = tmp_path / f"copy{redraws}"
        code, out, err = _interrupt(["copy", "--to", str(target)], source, b"copying", redraws)
        _assert_exit(code, out, err)
        _verify(target)
        copied = anyio.run(_head, target)
        if code == 130 and "were copied" in err:
            assert f"-{copied}) were copied" in err, err[-800:]
    finished = subprocess.run(
        [*METALEDGER, "--store", str(source), "copy", "--to", str(target)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert 0 == finished.returncode, finished.stderr
    assert anyio.run(_head, target) == anyio.run(_head, source)


# -- in-process: closing never races a worker thread ------------------------------


def _endless_inserts(started: threading.Event) -> Tx[None]:
    yield Execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    n = 0
    while True:  # stopped only by the cancellation
        yield Execute("INSERT INTO t (n) VALUES (?)", (n,))
        n += 1
        if n == 100:
            started.set()


@pytest.mark.anyio
@pytest.mark.parametrize("close_at_once", [False, True])
async def test_a_cancelled_views_transaction_rolls_back_before_close(
    tmp_path: Path, close_at_once: bool
) -> None:
    """A transaction whose caller is cancelled (natively, as asyncio's Ctrl-C does) stops,
    rolls back whole, and the connection is closed only after its thread let go of it."""
    views_store = SQLiteViewsStore(tmp_path / "views.db")
    await views_store.open()
    started = threading.Event()
    task = asyncio.create_task(views_store.transact(partial(_endless_inserts, started)))
    assert await anyio.to_thread.run_sync(started.wait, TIMEOUT)
    task.cancel()
    if close_at_once:  # before the cancelled task got to run: close must wait for the thread
        await views_store.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    await views_store.close()
    again = SQLiteViewsStore(tmp_path / "views.db")
    await again.open()
    try:
        assert [] == await again.fetch("SELECT name FROM sqlite_master WHERE name = 't'")
    finally:
        await again.close()
