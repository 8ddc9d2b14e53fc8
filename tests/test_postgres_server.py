"""What only a real server shows: commit order, several processes, lost connections."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from eventstore import NewEvent, RunDeleted, open_store

from .conftest import drop_schemas_async
from .workers import assert_appends_land_once, spawn

pytestmark = [pytest.mark.postgres]


def _count_commits(backend: Any) -> dict[str, int]:
    """Count the batches ``backend`` commits in one round trip ("fast") and the long way."""
    counts = {"fast": 0, "slow": 0}
    fast, slow = backend._commit_fast, backend._commit

    async def counting_fast(conn: Any, appends: Any) -> Any:
        outcomes = await fast(conn, appends)
        counts["fast"] += outcomes is not None
        return outcomes

    async def counting_slow(conn: Any, appends: Any, atomic: bool) -> Any:
        outcomes = await slow(conn, appends, atomic)
        counts["slow"] += 1
        return outcomes

    backend._commit_fast, backend._commit = counting_fast, counting_slow
    return counts


def _event(reason: str = "") -> RunDeleted:
    return RunDeleted(run_id=uuid.uuid4(), reason=reason)


async def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    """Poll an async condition until it holds (no fixed sleeps)."""
    with anyio.fail_after(timeout):
        # The condition lives in the server (pg_stat_activity): nothing to wait on but a poll.
        while not await condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def _lock_waiters(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'metaledger'"
            )
        )
    finally:
        await conn.close()


async def test_a_writer_holding_its_transaction_open_is_never_skipped(
    postgres_server: str, postgres_uri: str
) -> None:
    """The Marten #4953 case: writer A holds its transaction open while B tries to commit.

    B must wait for A (positions are allocated under one advisory lock), so a
    subscriber sees A's event at position p and B's at p + 1, never B's first.
    """
    async with (
        open_store(postgres_uri, default_stack=False) as a,
        open_store(postgres_uri, default_stack=False) as b,
        open_store(postgres_uri, poll_interval=0.02, default_stack=False) as reader,
    ):
        await a.append("warm", [_event()])
        release = anyio.Event()
        inside = anyio.Event()
        backend: Any = a.backend
        original = backend._lookup

        async def paused(conn: Any, event_ids: Any, streams: Any) -> Any:
            inside.set()
            await release.wait()
            return await original(conn, event_ids, streams)

        backend._lookup = paused
        seen: list[tuple[int, str]] = []
        got_both = anyio.Event()

        async def follow() -> None:
            async for recorded in reader.subscribe(2):
                seen.append((recorded.position, recorded.stream_id))
                if len(seen) == 2:
                    got_both.set()
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(follow)
            group.start_soon(a.append, "writer-a", [_event("a")])
            with anyio.fail_after(10):
                await inside.wait()  # A holds the lock, mid-transaction
            group.start_soon(b.append, "writer-b", [_event("b")])
            await _wait_until(lambda: _lock_waiters(postgres_server))  # B waits on the lock
            assert [] == seen
            release.set()
            with anyio.fail_after(10):
                await got_both.wait()
        assert [(2, "writer-a"), (3, "writer-b")] == seen
        assert (await reader.verify()).ok


async def test_connection_killed_mid_append_stores_it_once(
    postgres_server: str, postgres_uri: str
) -> None:
    """pg_terminate_backend during an append: the store reconnects, retries, stores it once."""
    import asyncpg

    async with open_store(postgres_uri, default_stack=False) as store:
        await store.append("warm", [_event()])
        backend: Any = store.backend
        original = backend._lookup
        killed: list[int] = []

        async def kill_first_time(conn: Any, event_ids: Any, streams: Any) -> Any:
            if not killed:
                killed.append(conn.get_server_pid())
                admin = await asyncpg.connect(postgres_server)
                try:
                    await admin.execute("SELECT pg_terminate_backend($1)", killed[0])
                finally:
                    await admin.close()
            return await original(conn, event_ids, streams)

        backend._lookup = kill_first_time
        events = [NewEvent(_event(str(i))) for i in range(3)]
        result = await store.append("victim", events)
        backend._lookup = original
        assert 1 == len(killed)
        assert 3 == len(result.positions)
        retry = await store.append("victim", events)
        assert result.positions == retry.positions
        stored = [e.event_id async for e in store.read_stream("victim")]
        assert [e.event_id for e in events] == stored
        assert (await store.verify()).ok


async def test_commit_acknowledgement_lost_after_commit(postgres_uri: str) -> None:
    """A commit that succeeded but whose answer was lost: the retry finds it, stores nothing."""
    import asyncpg

    async with open_store(postgres_uri, default_stack=False) as store:
        backend: Any = store.backend
        original = backend._commit
        calls: list[int] = []

        async def lose_the_answer(conn: Any, appends: Any, atomic: bool) -> Any:
            outcomes = await original(conn, appends, atomic)
            calls.append(1)
            if len(calls) == 1:
                raise asyncpg.ConnectionDoesNotExistError("the answer was lost")
            return outcomes

        backend._commit = lose_the_answer
        events = [NewEvent(_event("once"))]
        result = await store.append("s", events)
        assert 2 == len(calls)
        assert result.duplicate  # found already stored by the first attempt
        assert 1 == await store.head()


@pytest.mark.slow
async def test_four_processes_append_on_the_server(postgres_uri: str) -> None:
    """4 processes x 2,000 appends: gapless, contiguous, nothing lost, the chain intact."""
    await assert_appends_land_once(postgres_uri, timeout=600)


@pytest.mark.slow
async def test_processes_opening_a_fresh_database_at_once(postgres_server: str) -> None:
    """Three processes opening the same fresh schema at once: all succeed, one log results."""
    prefix = f"f{uuid.uuid4().hex[:12]}"
    uri = f"{postgres_server}?schema_prefix={prefix}"
    try:
        children = [spawn("append", uri, f"c{n}", "2", "20") for n in range(3)]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert 0 == child.returncode, err
        async with open_store(uri) as store:
            assert 60 == await store.head()
            assert (await store.verify()).ok
    finally:
        await drop_schemas_async(postgres_server, prefix)


async def test_answer_lost_after_a_one_round_trip_commit(postgres_uri: str) -> None:
    """The one-round-trip path committed but its answer was lost: the retry stores nothing."""
    import asyncpg

    async with open_store(postgres_uri, default_stack=False) as store:
        await store.append("s", [_event("first")])  # the handle now knows the head and "s"
        backend: Any = store.backend
        commits = _count_commits(backend)
        original = backend._commit_fast
        calls: list[int] = []

        async def lose_the_answer(conn: Any, appends: Any) -> Any:
            outcomes = await original(conn, appends)
            calls.append(1)
            if outcomes is not None and len(calls) == 1:
                raise asyncpg.ConnectionDoesNotExistError("the answer was lost")
            return outcomes

        backend._commit_fast = lose_the_answer
        result = await store.append("s", [_event("second")], expected_version=1)
        assert 1 == commits["fast"], "the first attempt took the fast path"
        assert result.duplicate
        assert (2,) == result.positions
        assert 2 == result.stream_version
        assert 2 == await store.head()
        assert (await store.verify()).ok


async def test_two_handles_taking_turns_stay_in_order(postgres_uri: str) -> None:
    """Each handle's knowledge of the head goes stale when the other writes: the stale
    one-round-trip attempt writes nothing and the append goes the long way."""
    async with (
        open_store(postgres_uri, default_stack=False) as first,
        open_store(postgres_uri, default_stack=False) as second,
    ):
        commits = [_count_commits(store.backend) for store in (first, second)]
        version = 0
        for turn in range(20):
            # Each handle writes twice in a row (the second time from what it knows),
            # then the other one moves the head.
            store = first if turn % 2 == 0 else second
            for _ in range(2):
                result = await store.append("shared", [_event()], expected_version=version)
                version = result.stream_version
        assert 40 == version == await first.head()
        for counts in commits:
            assert counts["fast"] >= 9
            assert counts["slow"] >= 9
        positions = [e.position async for e in first.read_all()]
        assert list(range(1, 41)) == positions
        assert (await first.verify()).ok


async def test_a_log_without_the_append_function_gets_it_on_open(
    postgres_server: str, postgres_uri: str
) -> None:
    """Logs made before the one-round-trip function get it when opened for writing."""
    import asyncpg

    async with open_store(postgres_uri, default_stack=False) as store:
        await store.append("s", [_event()])
        schema = store.backend.schema  # type: ignore[attr-defined]
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f"DROP FUNCTION {schema}.append_batch_v1")
    finally:
        await admin.close()
    async with open_store(postgres_uri, default_stack=False) as store:
        commits = _count_commits(store.backend)
        await store.append("s", [_event()], expected_version=1)
        await store.append("s", [_event()], expected_version=2)
        assert 1 == commits["fast"]
        assert 3 == await store.head()
