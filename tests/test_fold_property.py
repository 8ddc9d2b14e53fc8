"""The folded first try gives exactly the views and faults of the statement-by-statement path.

SQLite and PostgreSQL fold the run lifecycle projections' events straight into
rows (:mod:`projections.fold`; PostgreSQL sends each table's rows as one
statement). Random raw histories over a few runs, steps and
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
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    ArtifactConsumed,
    DescribedComponent,
    Event,
    EventStore,
    MetadataLogged,
    RunStackDescribed,
    open_store,
)
from eventstore.defaults import ensure_default_stack
from eventstore.demo import run_demo
from eventstore.openlineage import ingest
from projections import default_projections
from projections import runner as runner_module
from projections.fold import folder_for
from projections.row_ops import uuid_text
from projections.runner import ProjectionRunner
from projections.runs import RunsProjection
from projections.views_store import ViewsStore

from .histories import dump
from .openlineage_events import dag_run_events
from .test_coalesce_property import RUNS, events
from .views_stores import postgres_views, sqlite_views

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


Make = Callable[[], AbstractAsyncContextManager[ViewsStore]]


def _postgres_views(server: str) -> Make:
    return lambda: postgres_views(server, f"f{uuid.uuid4().hex[:12]}_views")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_views(request: pytest.FixtureRequest) -> Make:
    """Fresh empty views stores of one backend: in-memory SQLite, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return sqlite_views
    return _postgres_views(request.getfixturevalue("postgres_server"))


async def _prepared_pair(
    store: EventStore, folded: ViewsStore, reference: ViewsStore, batch_size: int
) -> list[ProjectionRunner]:
    """A folding runner on ``folded`` and a statement-by-statement one on
    ``reference``, prepared, in that order."""
    runners = [
        ProjectionRunner(store, folded, batch_size=batch_size, fold=True),
        ProjectionRunner(store, reference, batch_size=batch_size, coalesce=False, fold=False),
    ]
    for runner in runners:
        await runner.prepare()
    return runners


async def _check_folded(
    tmp_path: Path, make_views: Make, history: list[list[Event]], batch_size: int
) -> None:
    """A folding runner and a statement-by-statement one leave the same tables and faults."""
    async with (
        open_store(tmp_path / f"s{uuid.uuid4().hex}", default_stack=False) as store,
        make_views() as folded,
        make_views() as reference,
    ):
        runners = await _prepared_pair(store, folded, reference, batch_size)
        projections = default_projections()
        for events_ in history:
            for event in events_:
                await store.append("history", [event])
            for runner in runners:
                await runner.catch_up()
            got, expected = [await dump(r.views, projections) for r in runners]
            assert expected == got
            faults = [
                [(f.projection, f.position, f.reason) for f in await r.faults()] for r in runners
            ]
            assert faults[1] == faults[0]
        await runners[0].rebuild()
        assert await dump(reference, projections) == await dump(folded, projections)


_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=80, **_SETTINGS)  # type: ignore[arg-type]
@given(_rounds, st.integers(1, 6))
async def test_folded_equals_statements_on_sqlite(
    tmp_path: Path, history: list[list[Event]], batch_size: int
) -> None:
    """SQLite: the folded first try leaves the tables and faults the statements leave."""
    await _check_folded(tmp_path, sqlite_views, history, batch_size)


@pytest.mark.postgres
@settings(max_examples=20, **_SETTINGS)  # type: ignore[arg-type]
@given(_rounds, st.integers(1, 6))
async def test_folded_equals_statements_on_postgres(
    tmp_path: Path, postgres_server: str, history: list[list[Event]], batch_size: int
) -> None:
    """PostgreSQL (each table's folded rows sent as one statement): the same tables and faults."""
    await _check_folded(tmp_path, _postgres_views(postgres_server), history, batch_size)


def _spy_on_folds(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each folded batch (or its retry) ran with savepoints, in order."""
    retries: list[bool] = []
    original = runner_module.apply_batch

    def spy(work: Any, *args: Any, **kwargs: Any) -> Any:
        if any(w.fold for w in work) or kwargs["savepoints"]:
            retries.append(kwargs["savepoints"])
        return original(work, *args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    return retries


async def _folded_and_statements_agree(
    store: EventStore,
    folded: ViewsStore,
    reference: ViewsStore,
    retries: list[bool],
    batch_size: int = 10_000,
) -> dict[str, list[tuple[Any, ...]]]:
    """Catch both up (one folding, one statement by statement); the fold never retried,
    recorded no fault, and left the statements' tables, which are returned."""
    runners = await _prepared_pair(store, folded, reference, batch_size)
    for runner in runners:
        await runner.catch_up()
    assert retries
    assert not any(retries)
    assert [] == await runners[0].faults()
    projections = default_projections()
    rows = await dump(folded, projections)
    assert await dump(reference, projections) == rows
    return rows


async def test_a_clean_history_is_folded_at_the_first_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_views: Make
) -> None:
    """Valid runs (the demo, twice) are folded without a retry, and leave the tables
    the statements leave; SQLite and PostgreSQL fold by default."""
    tries: list[tuple[bool, list[str]]] = []
    original = runner_module.apply_batch

    def spy(work: Any, *args: Any, **kwargs: Any) -> Any:
        tries.append((kwargs["savepoints"], [w.projection.name for w in work if w.fold]))
        return original(work, *args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    async with open_store(tmp_path / "s") as store, make_views() as folded, make_views() as ref:
        await ensure_default_stack(store)
        for _ in range(2):
            await run_demo(store, artifact_root=tmp_path / "a")
        runner = ProjectionRunner(store, folded, batch_size=7)
        assert runner.fold
        await runner.prepare()
        await runner.catch_up()
        assert tries
        assert all(not savepoints for savepoints, _ in tries)
        assert any(names == ["runs", "artifacts"] for _, names in tries)
        plain = ProjectionRunner(store, ref, batch_size=7, coalesce=False, fold=False)
        await plain.prepare()
        await plain.catch_up()
        projections = default_projections()
        rows = await dump(folded, projections)
        assert [] not in (rows["runs"], rows["steps"], rows["artifacts"])
        assert await dump(ref, projections) == rows


async def test_rows_of_one_key_in_one_chunk_are_folded_at_the_first_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_views: Make
) -> None:
    """A chunk that upserts one row several times (an input consumed twice by two runs,
    a metadata key logged twice, one lineage edge twice) is folded without a retry:
    PostgreSQL sends such rows in successive statements, in log order, since one
    set-based upsert cannot touch a row twice; the tables are the statements'."""
    retries: list[bool] = []
    original = runner_module.apply_batch

    def spy(work: Any, *args: Any, **kwargs: Any) -> Any:
        retries.append(kwargs["savepoints"])
        return original(work, *args, **kwargs)

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    runs = [uuid.UUID(int=1), uuid.UUID(int=2)]
    step, artifacts = uuid.UUID(int=10), [uuid.UUID(int=20), uuid.UUID(int=21)]

    def consumed(run: int, artifact: int) -> ArtifactConsumed:
        return ArtifactConsumed(
            run_id=runs[run], step_run_id=step, input_name="x", artifact_id=artifacts[artifact]
        )

    history: list[Event] = [
        consumed(0, 0),
        MetadataLogged(run_id=runs[0], values={"k": 1, "j": 0}),
        consumed(1, 1),
        MetadataLogged(run_id=runs[0], values={"k": 2}),
        consumed(1, 0),
        MetadataLogged(run_id=runs[0], values={"k": 3}),
    ]
    async with (
        open_store(tmp_path / "s", default_stack=False) as store,
        make_views() as folded,
        make_views() as ref,
    ):
        for event in history:
            await store.append("history", [event])
        rows = await _folded_and_statements_agree(store, folded, ref, retries)
        assert len(rows["run_metadata"]) == 2


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_views: Make, batch_size: int
) -> None:
    """OpenLineage events between native runs (their statements run between the folded
    rows) are folded at the first try and leave the views the statements leave,
    whatever the chunk size."""
    retries = _spy_on_folds(monkeypatch)
    async with open_store(tmp_path / "s") as store, make_views() as folded, make_views() as ref:
        await ensure_default_stack(store)
        await run_demo(store, artifact_root=tmp_path / "a")
        for event in dag_run_events()["events"]:
            await ingest(store, json.dumps(event).encode())
        await run_demo(store, artifact_root=tmp_path / "a")
        rows = await _folded_and_statements_agree(store, folded, ref, retries, batch_size)
        assert [] not in (rows["runs"], rows["steps"], rows["ol_run_state"])


def _with_root_facets(dag: dict[str, Any]) -> list[dict[str, Any]]:
    """The DAG run's events, its Spark job's naming the DAG run as their root (as newer
    OpenLineage clients do): with its task's events missing, the task is a placeholder
    step inside the tree, not a root."""
    events = []
    for event in dag["events"]:
        if event["job"]["namespace"] == "spark":
            parent = dict(event["run"]["facets"]["parent"])
            parent["root"] = {
                "run": {"runId": dag["dag"]},
                "job": {"namespace": "airflow", "name": "etl"},
            }
            event = {**event, "run": {**event["run"], "facets": {"parent": parent}}}
        events.append(event)
    return events


#: Two DAG runs that share datasets; the second's Spark job names its root.
_TWO_DAG_RUNS = dag_run_events(0)["events"] + _with_root_facets(dag_run_events(1))


async def _openlineage_in_any_order(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_views: Make,
    data: st.DataObject,
) -> None:
    retries = _spy_on_folds(monkeypatch)
    # Some events left out, so that some parents stay placeholders; some sent twice.
    kept = data.draw(st.lists(st.sampled_from(_TWO_DAG_RUNS), min_size=1, max_size=30))
    shuffled = data.draw(st.permutations(kept))
    cuts = sorted(data.draw(st.sets(st.integers(0, len(shuffled)), max_size=3)))
    native_at = data.draw(st.integers(0, len(shuffled)))
    batch_size = data.draw(st.integers(1, 40))
    async with (
        open_store(tmp_path / f"s{uuid.uuid4().hex}") as store,
        make_views() as folded,
        make_views() as reference,
    ):
        await ensure_default_stack(store)
        runners = await _prepared_pair(store, folded, reference, batch_size)
        projections = default_projections()
        for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            for index in range(start, end):
                if index == native_at:
                    await run_demo(store, artifact_root=tmp_path / "a")
                await ingest(store, json.dumps(shuffled[index]).encode())
            for runner in runners:
                await runner.catch_up()
            assert await dump(reference, projections) == await dump(folded, projections)
        assert retries
        assert not any(retries)
        assert [] == await runners[0].faults()


@settings(max_examples=40, **_SETTINGS)  # type: ignore[arg-type]
@given(st.data())
async def test_openlineage_trees_rewritten_once_a_chunk_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    """Two DAG runs' events (datasets shared, duplicates) in any order, a native run among
    them, in chunks of any size: the fold, which rewrites each run tree its OpenLineage
    events touched once, before the next other event or at the chunk's end, leaves the
    tables of the statements, which rewrite the event's tree after every event."""
    await _openlineage_in_any_order(tmp_path, monkeypatch, sqlite_views, data)


@pytest.mark.postgres
@settings(max_examples=10, **_SETTINGS)  # type: ignore[arg-type]
@given(st.data())
async def test_openlineage_trees_rewritten_once_a_chunk_on_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: str, data: st.DataObject
) -> None:
    """PostgreSQL: the same."""
    await _openlineage_in_any_order(tmp_path, monkeypatch, _postgres_views(postgres_server), data)


@given(st.integers(0, (1 << 128) - 1))
def test_uuid_text_is_the_canonical_text(number: int) -> None:
    """``uuid_text`` (msgspec's C encoder) writes what ``str(UUID)`` writes."""
    value = uuid.UUID(int=number)
    assert str(value) == uuid_text(value)
