"""OpenLineage runs in the views: the DAG run mapping, and order tolerance under Hypothesis."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import open_store
from eventstore.demo import run_demo
from eventstore.openlineage import ingest, run_uuid
from projections import Views, default_projections, open_views
from projections import runner as runner_module
from projections.runner import ProjectionRunner

from .openlineage_events import dag_run_events, ndjson, run_event

DAG = dag_run_events()


#: The derived views' columns but ``position``.
_DERIVED_COLUMNS = {
    "lineage_edges": "source_id, source_kind, target_id, target_kind, name, run_id",
    "step_names": "step_run_id, run_id, step_name, status",
}


async def _dump(views: Views, names: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the named projections' views, without ``position`` columns (they
    record where a row was last written, which depends on arrival order)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for projection in default_projections():
        if projection.name not in names:
            continue
        for table, spec in projection.tables.items():
            columns = [c.strip().split()[0] for c in spec.columns.split(",")]
            # Version numbers count producers and readers in arrival order, as
            # for native runs: the one thing arrival order may change.
            kept = ", ".join(c for c in columns if c not in ("position", "version", "last_version"))
            rows = await views.views_store.fetch(f"SELECT {kept} FROM {table}")
            tables[table] = sorted(rows, key=repr)
        for view in projection.derived:
            rows = await views.views_store.fetch(f"SELECT {_DERIVED_COLUMNS[view]} FROM {view}")
            tables[view] = sorted(rows, key=repr)
    return tables


async def _views_after(
    events: list[dict[str, Any]], catch_up_at: set[int], names: tuple[str, ...]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_store(Path(tmp) / "s", default_stack=False) as store,
            open_views(store) as views,
        ):
            for index, event in enumerate(events):
                await ingest(store, json.dumps(event).encode())
                if index in catch_up_at:
                    await views.catch_up()
            await views.catch_up()
            return await _dump(views, names)


class TestMapping:
    """An Airflow-like DAG run with a Spark child job becomes one pipeline run with steps."""

    async def test_history_of_a_dag_run_is_every_raw_event_of_its_tree(
        self, tmp_path: Path
    ) -> None:
        """The run's audit trail: the raw events of the DAG run, its tasks and the Spark job."""
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await ingest(store, ndjson(DAG["events"]))
            history = await views.query.history("run", DAG["dag"])
            stored = [e async for e in store.read_all(types=["openlineage.received"])]
            assert [e.position for e in stored] == [e.position for e in history]
            assert len(history) == len({json.dumps(e, sort_keys=True) for e in DAG["events"]})

    async def test_dag_run(self, tmp_path: Path) -> None:
        """Steps nest under the root run; failed try, retry, ABORT and the Spark job show."""
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await ingest(store, ndjson(DAG["events"]))
            (run,) = await views.query.runs()
            assert ("airflow/etl", DAG["dag"], "completed") == (
                run.pipeline_name,
                run.run_name,
                run.status,
            )
            assert {"completed": 3, "failed": 1, "stopped": 1} == run.step_counts
            described = await views.query.run(DAG["dag"])
            steps = {s.step_run_id: s for s in described.steps}
            steps = {raw: steps[run_uuid(raw)] for raw in [*DAG["tasks"].values(), DAG["spark"]]}
            assert "OOM" == steps[DAG["tasks"]["transform_1"]].error
            spark = steps[DAG["spark"]]
            assert ("spark_app.execute_insert", "completed") == (spark.name, spark.status)
            assert spark.metadata["openlineage.parent"].endswith(DAG["tasks"]["transform_2"])
            assert "2026-05-01T12:00:00Z" == described.metadata["openlineage.nominalStartTime"]
            (pipeline,) = await views.query.pipelines()
            assert "airflow/etl" == pipeline.name
            graph = await views.query.lineage(run=DAG["dag"], direction="both")
            labels = {n.label for n in graph.nodes}
            assert {"s3://lake/raw/orders:v1", "s3://lake/clean/orders:v1"} <= labels, labels

    async def test_complete_before_start(self, tmp_path: Path) -> None:
        """A COMPLETE arriving first, then its START: one completed run with both times."""
        run_id = "7d3f2a10-9c4e-4b8a-a1d2-3e4f5a6b7c8d"
        start = run_event("START", run_id, "job", 0)
        complete = run_event("COMPLETE", run_id, "job", 5)
        running = run_event("RUNNING", run_id, "job", 3)
        # A RUNNING stamped after the end (a skewed clock, a late heartbeat) reopens nothing.
        late = run_event("RUNNING", run_id, "job", 9)
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await ingest(store, ndjson([complete, running, late, start]))
            (run,) = await views.query.runs()
            assert "completed" == run.status
            assert 300.0 == run.duration_s

    async def test_root_facet_places_a_grandchild_at_once(self, tmp_path: Path) -> None:
        """A Spark job naming its root (the DAG run) is a step of it before its task reports."""
        spark = [dict(e) for e in DAG["events"] if e["job"]["namespace"] == "spark"]
        for event in spark:
            parent = dict(event["run"]["facets"]["parent"])
            parent["root"] = {
                "run": {"runId": DAG["dag"]},
                "job": {"namespace": "airflow", "name": "etl"},
            }
            event["run"] = {**event["run"], "facets": {"parent": parent}}
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await ingest(store, ndjson(spark))
            (run,) = await views.query.runs()
            assert (DAG["dag"], "airflow/etl") == (run.run_name, run.pipeline_name)
            described = await views.query.run(DAG["dag"])
            names = sorted(s.name for s in described.steps)
            assert ["etl.transform", "spark_app.execute_insert"] == names

    async def test_orphan_child_makes_a_placeholder_root(self, tmp_path: Path) -> None:
        """A Spark job whose parent never reports is a step of a run named by its facet."""
        events = [e for e in DAG["events"] if e["job"]["namespace"] == "spark"]
        async with open_store(tmp_path / "s") as store, open_views(store) as views:
            await ingest(store, ndjson(events))
            (run,) = await views.query.runs()
            assert (DAG["tasks"]["transform_2"], "airflow/etl.transform") == (
                run.run_name,
                run.pipeline_name,
            )
            assert "open" == run.status


_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Each run's events (the Spark job's carry inputs and outputs); the DAG run's whole tree.
_RUNS = sorted(
    {
        e["run"]["runId"]: [x for x in DAG["events"] if x["run"]["runId"] == e["run"]["runId"]]
        for e in DAG["events"]
    }.values(),
    key=len,
)


@_SETTINGS
@given(st.data())
async def test_any_order_of_a_runs_events_gives_the_same_views(data: st.DataObject) -> None:
    """Any permutation of one run's events (after the others), with duplicates, caught up
    at any points, yields every view of the events in order: runs, steps and artifacts."""
    own = data.draw(st.sampled_from(_RUNS))
    before = [e for e in DAG["events"] if e not in own]
    extra = data.draw(st.lists(st.sampled_from(own), max_size=4))
    shuffled = data.draw(st.permutations(own + extra))
    catch_up_at = data.draw(st.sets(st.integers(0, len(before) + len(shuffled) - 1), max_size=3))
    names = ("runs", "artifacts")
    expected = await _views_after(before + own, set(), names)
    assert expected == await _views_after(before + shuffled, catch_up_at, names)


@_SETTINGS
@given(st.data())
async def test_any_order_of_a_dag_runs_tree_gives_the_same_runs(data: st.DataObject) -> None:
    """Any permutation of a whole DAG run's events (the DAG, its tasks, the Spark job),
    with duplicates, yields the same runs, steps, run metadata, artifacts and lineage
    edges (a reader arriving before its producer still links to it). Artifact version
    numbers, as for native runs, follow the order producers and readers arrive in."""
    events = DAG["events"]
    extra = data.draw(st.lists(st.sampled_from(events), max_size=6))
    shuffled = data.draw(st.permutations(events + extra))
    catch_up_at = data.draw(st.sets(st.integers(0, len(shuffled) - 1), max_size=4))
    names = ("runs", "artifacts")
    expected = await _views_after(events, set(), names)
    assert expected == await _views_after(shuffled, catch_up_at, names)


async def test_an_end_stamped_before_the_start_has_no_duration(tmp_path: Path) -> None:
    """A producer clock that stamps COMPLETE before START: both times kept, no negative duration."""
    run_id = "0194b0c0-0000-7000-8000-0000000000aa"
    start = run_event("START", run_id, "skewed", 60)
    complete = run_event("COMPLETE", run_id, "skewed", 0)
    async with open_store(tmp_path / "s") as store, open_views(store) as views:
        await ingest(store, ndjson([complete, start]))
        (run,) = await views.query.runs()
        assert run.status == "completed"
        assert run.duration_s is None


async def _secondary_indexes(views: Views) -> list[str]:
    rows = await views.views_store.fetch(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ol_run_tree_g%'"
    )
    return sorted(name for (name,) in rows)


async def test_a_first_catch_up_indexes_before_openlineage_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh generation is loaded without its secondary indexes, built once caught up.
    OpenLineage events run as statements that find rows by those keys: the batch that
    first meets one builds them (without, each statement scanned its tables: a first
    catch-up of 5,000 events took 34 s against 2). Native events alone leave them out."""

    async def no_final_indexes(self: ProjectionRunner) -> None:
        return None

    monkeypatch.setattr(ProjectionRunner, "_ensure_indexes", no_final_indexes)
    async with open_store(tmp_path / "native") as store:
        await run_demo(store, artifact_root=tmp_path / "a")
        async with open_views(store) as views:
            await views.catch_up()
            assert [] == await _secondary_indexes(views)
    async with open_store(tmp_path / "lineage") as store:
        await run_demo(store, artifact_root=tmp_path / "a")
        await ingest(store, ndjson(DAG["events"]))
        async with open_views(store) as views:
            await views.catch_up()
            assert ["ol_run_tree_g1_i0"] == await _secondary_indexes(views)
            (run,) = [r for r in await views.query.runs() if r.run_name == DAG["dag"]]
            assert "completed" == run.status


async def test_a_rebuild_indexes_its_generation_before_openlineage_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild fills a generation without its secondary indexes too: the batch that
    first applies OpenLineage statements to it builds them (the swap would, too late);
    after the rebuild, a second one of the same projection does so again."""
    indexed: list[tuple[str, int]] = []
    original = runner_module.apply_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        outcome = yield from original(*args, **kwargs)
        indexed.extend(sorted(outcome.indexed))
        return outcome

    monkeypatch.setattr(runner_module, "apply_batch", spy)
    async with open_store(tmp_path / "s") as store:
        await ingest(store, ndjson(DAG["events"]))
        async with open_views(store) as views:
            await views.catch_up()
            assert ("runs", 1) in indexed
            for expected in (("runs", 2), ("runs", 3)):
                indexed.clear()
                await views.rebuild("runs")
                assert [expected] == indexed
            (run,) = await views.query.runs()
            assert "completed" == run.status
