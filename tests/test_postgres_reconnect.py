"""PostgreSQL: writes and reads ride out connections killed under them (issue 10, 7).

A side connection terminates every connection of the store's process (found by
its ``application_name``) every 0.4 s while an orchestrator records runs and a
reader queries the views; no call may fail.
"""

from __future__ import annotations

import uuid

import anyio
import pytest

from eventstore import open_store
from projections import open_views

pytestmark = pytest.mark.anyio

#: Kill rounds that must have terminated connections before the test stops.
_ROUNDS = 6
#: Upper bound on the orchestrator's runs, so the test always ends.
_MAX_RUNS = 300


async def test_runs_and_queries_survive_terminated_backends(
    postgres_server: str, postgres_uri: str
) -> None:
    """No ``pipeline_run()``, log read or views query fails while backends are killed."""
    import asyncpg

    tag = f"mlkill_{uuid.uuid4().hex[:12]}"
    uri = f"{postgres_uri}&application_name={tag}"
    rounds = 0
    terminated = 0
    stop = anyio.Event()

    async def killer() -> None:
        nonlocal rounds, terminated
        conn = await asyncpg.connect(postgres_server, timeout=10)
        try:
            while not stop.is_set():
                with anyio.move_on_after(0.4):
                    await stop.wait()
                # Counted: the pools' connections (the LISTEN one only wakes followers).
                killed = await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid) "
                    "AND query NOT LIKE 'LISTEN%') FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    tag,
                )
                if killed:
                    rounds += 1
                    terminated += killed
        finally:
            await conn.close()

    recorded = 0
    async with open_store(uri) as store, open_views(store) as views:
        async with anyio.create_task_group() as group:
            group.start_soon(killer)
            try:
                while rounds < _ROUNDS and recorded < _MAX_RUNS:
                    async with store.pipeline_run("training") as run:
                        async with run.step("load") as step:
                            data = await step.produce("data", uri="file:///tmp/data.parquet")
                        async with run.step("train", upstream_steps=["load"]) as step:
                            await step.consume("data", data)
                            await step.log_metadata({"accuracy": 0.93})
                    recorded += 1
                    head = await views.catch_up()
                    # Never a silently stale answer: the views hold every recorded run.
                    assert recorded == len(await views.query.runs(limit=_MAX_RUNS))
                    assert head == await store.head()
                    events = [e async for e in store.read_stream(f"run-{run.run_id}")]
                    assert "run.finished" == events[-1].type
            finally:
                stop.set()
        report = await store.verify()
    assert report.ok
    assert rounds >= _ROUNDS, (rounds, recorded)
    assert terminated >= _ROUNDS
