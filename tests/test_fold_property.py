"""The folded first try gives exactly the views and faults of the statement-by-statement path.

SQLite folds the run lifecycle projections' events straight into rows
(:mod:`projections.fold`). Random raw histories over a few runs, steps and
artifacts (duplicates, events out of order, events about rows that do not
exist, run deletions, stacks described by runs), appended in rounds and caught
up after each round in small chunks, so runs straddle chunk and transaction
boundaries: a runner that folds and one that runs each op as its SQL
statement must leave the same tables and faults, and so must a rebuild of the
folded one.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import DescribedComponent, Event, RunStackDescribed, open_store
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.openlineage import ingest
from projections import default_projections
from projections import runner as runner_module
from projections.fold import folder_for
from projections.row_ops import uuid_text
from projections.runner import ProjectionRunner
from projections.runs import RunsProjection
from projections.views_store import SQLiteViewsStore

from .histories import dump
from .openlineage_events import dag_run_events
from .test_coalesce_property import RUNS, events

_described = st.builds(
    RunStackDescribed,
    run_id=st.sampled_from(RUNS),
    stack_id=st.sampled_from([uuid.UUID(int=300), uuid.UUID(int=301)]),
    name=st.sampled_from(["s", "t"]),
    components=st.lists(
        st.builds(
            DescribedComponent,
            component_id=st.just(uuid.UUID(int=400)),
            type=st.just("orchestrator"),
            flavor=st.just("local"),
            name=st.sampled_from(["o", "p"]),
        ),
        max_size=1,
    ),
)
_rounds = st.lists(
    st.lists(st.one_of(events, _described), min_size=1, max_size=14), min_size=1, max_size=4
)


async def _views() -> SQLiteViewsStore:
    views = SQLiteViewsStore(None)
    await views.open()
    return views


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_rounds, st.integers(1, 6))
async def test_folded_equals_statements(
    tmp_path: Path, history: list[list[Event]], batch_size: int
) -> None:
    """The folded first try leaves the tables and faults the statements leave."""
    async with open_store(tmp_path / f"s{uuid.uuid4().hex}", default_stack=False) as store:
        folded, reference = await _views(), await _views()
        try:
            runners = [
                ProjectionRunner(store, folded, batch_size=batch_size, fold=True),
                ProjectionRunner(store, reference, batch_size=batch_size, fold=False),
            ]
            for runner in runners:
                await runner.prepare()
            projections = default_projections()
            for events_ in history:
                for event in events_:
                    await store.append("history", [event])
                for runner in runners:
                    await runner.catch_up()
                got, expected = [await dump(r.views, projections) for r in runners]
                assert expected == got
                faults = [
                    [(f.projection, f.position, f.reason) for f in await r.faults()]
                    for r in runners
                ]
                assert faults[1] == faults[0]
            await runners[0].rebuild()
            assert await dump(reference, projections) == await dump(folded, projections)
        finally:
            await folded.close()
            await reference.close()


async def test_a_clean_history_is_folded_at_the_first_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid runs (the demo, twice) are folded without a retry, and leave the tables
    the statements leave; SQLite folds by default."""
    tries: list[tuple[bool, list[str]]] = []
    original = runner_module.apply_batch

    def spy(work: Any, *args: Any, **kwargs: Any) -> Any:
        tries.append((kwargs["savepoints"], [w.projection.name for w in work if w.fold]))
        return original(work, *args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    async with open_store(tmp_path / "s") as store:
        await ensure_default_stack(store)
        for _ in range(2):
            await run_demo(store, artifact_root=tmp_path / "a")
        folded, reference = await _views(), await _views()
        try:
            runner = ProjectionRunner(store, folded, batch_size=7)
            assert runner.fold
            await runner.prepare()
            await runner.catch_up()
            assert tries
            assert all(not savepoints for savepoints, _ in tries)
            assert any(names == ["runs", "artifacts"] for _, names in tries)
            plain = ProjectionRunner(store, reference, batch_size=7, fold=False)
            await plain.prepare()
            await plain.catch_up()
            projections = default_projections()
            rows = await dump(folded, projections)
            assert [] not in (rows["runs"], rows["steps"], rows["artifacts"])
            assert await dump(reference, projections) == rows
        finally:
            await folded.close()
            await reference.close()


def test_a_changed_projection_is_not_folded() -> None:
    """A subclass, another version or a patched handler takes the per-event path."""

    class Other(RunsProjection):
        pass

    assert folder_for(RunsProjection()) is not None
    assert folder_for(Other()) is None
    patched = RunsProjection()
    patched._handlers = {**patched._handlers}
    patched._handlers[next(iter(patched._handlers))] = lambda e, c: ()
    assert folder_for(patched) is None
    newer = RunsProjection()
    setattr(newer, "version", RunsProjection.version + 1)  # noqa: B010 (a ClassVar)
    assert folder_for(newer) is None


@pytest.mark.parametrize("batch_size", [3, 8, 1000])
async def test_openlineage_events_are_barriers_of_the_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    """OpenLineage events between native runs (their statements run between the folded
    rows) are folded at the first try and leave the views the statements leave,
    whatever the chunk size."""
    retries: list[bool] = []
    original = runner_module.apply_batch

    def spy(work: Any, *args: Any, **kwargs: Any) -> Any:
        if any(w.fold for w in work) or kwargs["savepoints"]:
            retries.append(kwargs["savepoints"])
        return original(work, *args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    async with open_store(tmp_path / "s") as store:
        await ensure_default_stack(store)
        await run_demo(store, artifact_root=tmp_path / "a")
        for event in dag_run_events()["events"]:
            await ingest(store, json.dumps(event).encode())
        await run_demo(store, artifact_root=tmp_path / "a")
        folded, reference = await _views(), await _views()
        try:
            runners = [
                ProjectionRunner(store, folded, batch_size=batch_size, fold=True),
                ProjectionRunner(store, reference, batch_size=batch_size, fold=False),
            ]
            for runner in runners:
                await runner.prepare()
                await runner.catch_up()
            assert retries
            assert not any(retries)
            projections = default_projections()
            rows = await dump(folded, projections)
            assert [] not in (rows["runs"], rows["steps"], rows["ol_run_state"])
            assert await dump(reference, projections) == rows
            assert [] == await runners[0].faults()
        finally:
            await folded.close()
            await reference.close()


@given(st.integers(0, (1 << 128) - 1))
def test_uuid_text_is_the_canonical_text(number: int) -> None:
    """``uuid_text`` (msgspec's C encoder) writes what ``str(UUID)`` writes."""
    value = uuid.UUID(int=number)
    assert str(value) == uuid_text(value)
