"""The coalesced apply gives exactly the views and faults of the statement-by-statement path.

Random raw histories over a few runs, steps and artifacts (duplicates,
events out of order, events about rows that do not exist, run deletions),
appended in rounds and caught up after each round in small chunks, so runs
straddle chunk and transaction boundaries. Two runners read the same log:
one coalesces each chunk per row (``coalesce=True``), the other runs each op as
its SQL statement (``coalesce=False``). Their tables and faults must be the
same, on SQLite and on PostgreSQL; a rebuild of the coalesced one too. (Only
PostgreSQL coalesces by default; the SQLite views store can, and is tested
doing it.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ArtifactConsumed,
    ArtifactProduced,
    Event,
    EventStore,
    MetadataLogged,
    RunDeleted,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from projections import ViewsStore, default_projections
from projections import runner as runner_module
from projections.runner import ProjectionRunner
from projections.views_store import SQLiteViewsStore

from .histories import dump
from .views_stores import postgres_views, sqlite_views

RUNS = [uuid.UUID(int=1 + n) for n in range(3)]
STEPS = [uuid.UUID(int=100 + n) for n in range(4)]
ARTIFACTS = [uuid.UUID(int=200 + n) for n in range(3)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


_run = st.sampled_from(RUNS)
_step = st.sampled_from(STEPS)
_artifact = st.sampled_from(ARTIFACTS)
_second = st.integers(0, 100)
_name = st.sampled_from(["a", "b"])

events = st.one_of(
    st.builds(
        RunStarted, run_id=_run, pipeline_name=_name, run_name=_name, started_at=_second.map(_at)
    ),
    st.builds(
        StepStarted, run_id=_run, step_run_id=_step, step_name=_name, started_at=_second.map(_at)
    ),
    st.builds(
        StepFinished,
        run_id=_run,
        step_run_id=_step,
        status=st.sampled_from(["completed", "failed", "cached"]),
        finished_at=_second.map(_at),
        error=st.none() | _name,
    ),
    st.builds(
        RunFinished,
        run_id=_run,
        status=st.sampled_from(["completed", "failed"]),
        finished_at=_second.map(_at),
    ),
    st.builds(
        ArtifactProduced,
        run_id=_run,
        step_run_id=_step,
        output_name=_name,
        artifact_id=_artifact,
        artifact_name=_name,
        uri=_name,
    ),
    st.builds(
        ArtifactConsumed, run_id=_run, step_run_id=_step, input_name=_name, artifact_id=_artifact
    ),
    st.builds(
        MetadataLogged,
        run_id=_run,
        values=st.dictionaries(_name, st.integers(0, 3), min_size=1, max_size=2),
        step_run_id=st.none() | _step,
    ),
    st.builds(RunDeleted, run_id=_run),
)
rounds = st.lists(st.lists(events, min_size=1, max_size=12), min_size=1, max_size=4)


async def _compare(
    store: EventStore,
    history: list[list[Event]],
    batch_size: int,
    make: Callable[[str], Any],
) -> None:
    async with make("c") as coalesced, make("r") as reference:
        runners = [
            ProjectionRunner(store, coalesced, batch_size=batch_size, coalesce=True),
            ProjectionRunner(store, reference, batch_size=batch_size, coalesce=False, fold=False),
        ]
        for runner in runners:
            await runner.prepare()
        for events_ in history:
            for event in events_:
                await store.append("history", [event])
            for runner in runners:
                await runner.catch_up()
            projections = default_projections()
            got, expected = [await dump(r.views, projections) for r in runners]
            assert expected == got
            faults = [
                [(f.projection, f.position, f.reason) for f in await r.faults()] for r in runners
            ]
            assert faults[1] == faults[0]
        await runners[0].rebuild()
        assert await dump(reference, projections) == await dump(coalesced, projections)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds, st.integers(1, 5))
async def test_coalesced_equals_statements_on_sqlite(
    tmp_path: Path, history: list[list[Event]], batch_size: int
) -> None:
    """SQLite: the coalesced apply leaves the same tables and faults as the statements."""

    def make(_: str) -> AbstractAsyncContextManager[ViewsStore]:
        return sqlite_views()

    async with open_store(tmp_path / f"s{uuid.uuid4().hex}", default_stack=False) as store:
        await _compare(store, history, batch_size, make)


@pytest.mark.postgres
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds, st.integers(1, 5))
async def test_coalesced_equals_statements_on_postgres(
    tmp_path: Path, postgres_server: str, history: list[list[Event]], batch_size: int
) -> None:
    """PostgreSQL: the coalesced apply (unnest writes) leaves the same tables and faults."""
    prefix = f"c{uuid.uuid4().hex[:12]}"

    def make(kind: str) -> AbstractAsyncContextManager[ViewsStore]:
        return postgres_views(postgres_server, f"{prefix}_{kind}")

    async with open_store(tmp_path / f"s{uuid.uuid4().hex}", default_stack=False) as store:
        await _compare(store, history, batch_size, make)


async def test_a_clean_history_is_applied_coalesced_at_the_first_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid runs (the demo, twice) go through the coalesced path without a retry,
    and leave the tables the statements leave."""
    tries: list[tuple[bool, bool]] = []
    original = runner_module.apply_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        tries.append((kwargs["savepoints"], kwargs["coalesce"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    async with open_store(tmp_path / "s") as store:
        await ensure_default_stack(store)
        for _ in range(2):
            await run_demo(store, artifact_root=tmp_path / "a")
        views = [SQLiteViewsStore(None), SQLiteViewsStore(None)]
        for target in views:
            await target.open()
        try:
            coalesced = ProjectionRunner(store, views[0], batch_size=7, coalesce=True)
            await coalesced.prepare()
            await coalesced.catch_up()
            assert tries
            assert all(not savepoints and coalesce for savepoints, coalesce in tries)
            reference = ProjectionRunner(store, views[1], batch_size=7, coalesce=False, fold=False)
            await reference.prepare()
            await reference.catch_up()
            projections = default_projections()
            rows = await dump(views[0], projections)
            assert [] not in (rows["runs"], rows["artifacts"], rows["lineage_edges"])
            assert await dump(views[1], projections) == rows
        finally:
            for target in views:
                await target.close()
