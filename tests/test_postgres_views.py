"""Projections on PostgreSQL views: the same guarantees as on SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import RunStarted, open_store
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from projections import (
    ProjectionRunner,
    Queries,
    default_projections,
    open_views,
    views_as_of,
)
from projections.postgres_views_store import PostgresViewsStore, to_dollar_params

from .conftest import drop_schemas_async
from .histories import Command, commands, dump, play_all
from .test_projections import BrokenRuns, FixedRuns, RunsV2

pytestmark = pytest.mark.postgres


def test_placeholders_become_dollar_params() -> None:
    """? marks become $n, except inside string literals."""
    assert "SELECT $1, '?', 'it''s ?', $2 LIKE $3 ESCAPE '\\'" == to_dollar_params(
        "SELECT ?, '?', 'it''s ?', ? LIKE ? ESCAPE '\\'"
    )


async def _as_of_dump(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    async with views_as_of(store) as scratch:
        return await dump(scratch.views_store, default_projections())


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands, st.integers(1, 30))
async def test_incremental_equals_rebuild_equals_as_of_on_postgres(
    postgres_server: str, history: list[Command], batch: int
) -> None:
    """On PostgreSQL views: incremental == rebuilt == replayed as of the head (SQLite scratch)."""
    prefix = f"h{uuid.uuid4().hex[:12]}"
    try:
        async with open_store(f"{postgres_server}?schema_prefix={prefix}") as store:
            async with open_views(store) as views:
                views.runner.batch_size = batch

                async def between(index: int) -> None:
                    if index % 7 == 3:
                        await views.catch_up()

                await play_all(store, history, between)
                await views.catch_up()
                incremental = await dump(views.views_store, default_projections())
                await views.rebuild()
                rebuilt = await dump(views.views_store, default_projections())
            as_of = await _as_of_dump(store)
        assert _normalised(incremental) == _normalised(rebuilt)
        assert _normalised(incremental) == _normalised(as_of)
    finally:
        await drop_schemas_async(postgres_server, prefix)


def _normalised(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The same rows whatever the driver: sorted, numbers as ints."""
    return {
        name: sorted(
            (tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows), key=repr
        )
        for name, rows in tables.items()
    }


async def test_demo_runs_query_on_postgres(postgres_uri: str, tmp_path: Path) -> None:
    """The demo, queried from PostgreSQL views, as on SQLite."""
    async with open_store(postgres_uri) as store, open_views(store) as views:
        await ensure_default_stack(store, tmp_path / "a")
        run_id = await run_demo(store, artifact_root=tmp_path / "a")
        await views.wait_for(await store.head(), timeout=20)
        run = await views.query.run(str(run_id)[:8])
        assert {"completed": 6, "failed": 1} == run.step_counts
        graph = await views.query.lineage(artifact="training_pipeline.evaluate.metrics", depth=10)
        assert 13 == len(graph.nodes)
        assert ["default"] == [s.name for s in await views.query.stacks()]


async def test_two_runners_and_a_version_bump(postgres_uri: str, tmp_path: Path) -> None:
    """Two runners at once give the rebuilt views; a version bump rebuilds blue/green while
    a reader always sees every run."""
    async with open_store(postgres_uri) as store:
        await ensure_default_stack(store, tmp_path / "a")
        for _ in range(8):
            await run_demo(store, artifact_root=tmp_path / "a")
        backend: Any = store.backend
        first = PostgresViewsStore(backend.dsn, backend.views_schema)
        second = PostgresViewsStore(backend.dsn, backend.views_schema)
        await first.open()
        await second.open()
        try:
            runners = [
                ProjectionRunner(store, v, batch_size=b) for v, b in ((first, 9), (second, 13))
            ]
            for runner in runners:
                await runner.prepare()
            async with anyio.create_task_group() as group:
                for runner in runners:
                    group.start_soon(runner.catch_up)
            assert _normalised(await dump(first, default_projections())) == _normalised(
                await _as_of_dump(store)
            )
            seen: list[int] = []
            done = anyio.Event()

            async def read_in_a_loop() -> None:
                while not done.is_set():
                    seen.append((await Queries(second).summary()).runs.get("completed", 0))
                    await anyio.lowlevel.checkpoint()

            projections = [p if p.name != "runs" else RunsV2() for p in default_projections()]
            bumped = ProjectionRunner(store, first, projections, batch_size=20)
            async with anyio.create_task_group() as group:
                group.start_soon(read_in_a_loop)
                assert ["runs"] == await bumped.prepare()
                done.set()
            assert {8} == set(seen)
        finally:
            await first.close()
            await second.close()


async def test_failing_handler_then_fix_on_postgres(postgres_uri: str, tmp_path: Path) -> None:
    """A failing handler's event is recorded and passed on PostgreSQL too; a fixed version
    applies it and forgets the fault."""
    async with open_store(postgres_uri) as store:
        await ensure_default_stack(store, tmp_path / "a")
        poison = await store.start_run("poison")
        poison_position = await store.head()
        await poison.finish()
        projections = [p if p.name != "runs" else BrokenRuns() for p in default_projections()]
        async with open_views(store, projections=projections) as views:
            await views.catch_up()
            status = {s.name: s for s in await views.status()}
            assert "live" == status["runs"].state
            assert [poison_position] == [f.position for f in status["runs"].faults]
            await views.wait_for(await store.head(), timeout=5)
            assert [] == await views.query.runs()
        fixed = [p if p.name != "runs" else FixedRuns() for p in default_projections()]
        async with open_views(store, projections=fixed) as views:
            assert ["poison"] == [r.pipeline_name for r in await views.query.runs()]
            assert [] == await views.faults()


async def test_a_poison_event_is_recorded_and_passed_on_postgres(postgres_uri: str) -> None:
    """A second run.started of a run (through the raw Log.append) fails in SQL: the event is
    undone and recorded, every later event applies, and a rebuild records it again."""
    async with open_store(postgres_uri) as store:
        first = await store.start_run("first")
        again = RunStarted(
            run_id=first.run_id,
            pipeline_name="first",
            run_name="again",
            started_at=datetime.now(UTC),
        )
        await store.append(first.stream_id, [again])
        poison_position = await store.head()
        await store.start_run("later")
        head = await store.head()
        async with open_views(store) as views:
            await views.catch_up()
            status = {s.name: s for s in await views.status()}
            assert {head} == {s.position for s in status.values()}
            assert {"live"} == {s.state for s in status.values()}
            for name in ("runs", "artifacts"):
                [fault] = status[name].faults
                assert (poison_position, True) == (
                    fault.position,
                    fault.reason.startswith("SQL error"),
                )
            runs = await views.query.runs()
            assert ["later", "first"] == [r.pipeline_name for r in runs]
            await views.rebuild()
            assert [poison_position, poison_position] == [f.position for f in await views.faults()]
            assert 2 == len(await views.query.runs())
