"""Concurrent rebuilds, catch-ups and version-bump rebuilds all terminate with correct views.

Several processes (tests/concurrency_workers.py) are released at once on one
store; each must finish within a timeout (a process spinning forever on a swap
it can never win fails the test), and the views must then equal a fresh replay
of the log, with no rebuild left pending. Both backends.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench import lifecycle_appends
from eventstore import open_store
from projections import ProjectionRunner, default_projections, views_as_of
from projections.transactions import begin_rebuild, read_states
from projections.views import live_views_store

from .concurrency_workers import BATCH, bumped_projections, spawn
from .histories import dump

pytestmark = pytest.mark.slow

#: Pipeline runs in the test store (about ten events each).
RUNS = 80
#: Seconds every child together may take; a spinning child exceeds it by far.
TIMEOUT = 120.0


async def _fill(uri: str) -> int:
    async with open_store(uri) as store:
        for batch in lifecycle_appends(RUNS):
            await store.append_many(batch)
        head: int = await store.head()
    return head


def _run_at_once(kinds: Sequence[str], uri: str, *, conflict_ok: bool = False) -> None:
    """Start one child per kind, release them together, and require each to finish
    (with ``conflict_ok``, finishing on RebuildConflictError counts too)."""
    children = [spawn(kind, uri) for kind in kinds]
    try:
        for child in children:
            assert child.stdout is not None
            assert "ready" == child.stdout.readline().strip(), child.communicate()[1]
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for kind, child in zip(kinds, children, strict=True):
            try:
                out, err = child.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"a concurrent {kind!r} child did not finish in {TIMEOUT:g} s")
            if conflict_ok and child.returncode == 1 and "RebuildConflictError" in err:
                continue
            assert 0 == child.returncode, f"{kind}: {err}"
            assert "done" in out
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate()


async def _assert_views_equal_replay(
    uri: str, projections: list[Any] | None = None, *, pending_ok: bool = False
) -> None:
    projections = projections or default_projections()
    async with open_store(uri, create=False) as store:
        head = await store.head()
        views_store = live_views_store(store)
        await views_store.open()
        try:
            states = await views_store.read(read_states)
            for projection in projections:
                state = states[projection.name]
                assert state.status == "live", state
                assert state.version == projection.version, state
                assert state.position == head, state
                assert pending_ok or state.pending_generation is None, state
            live = await dump(views_store, projections)
        finally:
            await views_store.close()
        async with views_as_of(store, projections=projections) as replayed:
            fresh = await dump(replayed.views_store, projections)
    assert live == fresh
    assert any(live.values())


async def _leave_a_rebuild_pending(uri: str) -> None:
    """What a rebuild killed half-way leaves: every projection with a pending generation."""
    async with open_store(uri, create=False) as store:
        head = await store.head()
        views_store = live_views_store(store)
        await views_store.open()
        try:
            runner = ProjectionRunner(store, views_store, batch_size=BATCH)
            await runner.prepare()
            await runner.catch_up()
            for projection in runner.projections.values():
                await views_store.transact(partial(begin_rebuild, projection))
                await runner.refresh()
                await runner._run_to(head // 2, rebuilding=[projection])
            states = await views_store.read(read_states)
        finally:
            await views_store.close()
    assert all(s.pending_position == head // 2 for s in states.values()), states


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URI on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store")
    uri: str = request.getfixturevalue("postgres_uri")
    return uri


async def test_several_rebuilds_at_once_all_finish(store_uri: str) -> None:
    """Three `projections rebuild` at once: each finishes, the views equal a fresh replay."""
    await _fill(store_uri)
    _run_at_once(["read"], store_uri)
    _run_at_once(["rebuild", "rebuild", "rebuild"], store_uri)
    await _assert_views_equal_replay(store_uri)


async def test_readers_finish_a_rebuild_left_pending(store_uri: str) -> None:
    """A rebuild left half done by a killed process, then three readers at once: all finish."""
    await _fill(store_uri)
    await _leave_a_rebuild_pending(store_uri)
    _run_at_once(["read", "read", "read"], store_uri)
    await _assert_views_equal_replay(store_uri)


async def test_rebuilds_reads_and_version_bumps_at_once(store_uri: str) -> None:
    """Upgraded code (runs one version ahead) opened by readers and rebuilds at once, over a
    rebuild of the old version left pending: all finish on the new version."""
    await _fill(store_uri)
    await _leave_a_rebuild_pending(store_uri)
    _run_at_once(["read+", "rebuild+", "read+", "read+", "rebuild+"], store_uri)
    await _assert_views_equal_replay(store_uri, bumped_projections())


async def test_two_versions_rebuilding_at_once_terminate(store_uri: str) -> None:
    """Old and new code rebuilding one views store at once (unsupported, but never a hang):
    each finishes or gives up with RebuildConflictError, and the views are correct for
    whichever version is live."""
    await _fill(store_uri)
    _run_at_once(["read"], store_uri)
    _run_at_once(["rebuild", "rebuild+", "rebuild", "rebuild+"], store_uri, conflict_ok=True)
    async with open_store(store_uri, create=False) as store:
        views_store = live_views_store(store)
        await views_store.open()
        try:
            live_version = (await views_store.read(read_states))["runs"].version
        finally:
            await views_store.close()
    bumped = live_version != default_projections()[1].version
    # Both may give up, leaving the last one's generation pending (the next read resumes it).
    projections = bumped_projections() if bumped else None
    await _assert_views_equal_replay(store_uri, projections, pending_ok=True)
