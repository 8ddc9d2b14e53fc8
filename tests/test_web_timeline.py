"""The run page's timeline rows as data: OpenLineage tasks, nested jobs, odd parents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventstore.openlineage import run_uuid
from projections.queries import RunView, StepView
from server.web.timeline import MAX_DEPTH, timeline

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _step(raw: str, name: str, minute: int, parent: str | None = None) -> StepView:
    return StepView(
        step_run_id=run_uuid(raw),
        run_id=run_uuid("dag"),
        name=name,
        status="completed",
        started_at=T0 + timedelta(minutes=minute),
        finished_at=T0 + timedelta(minutes=minute + 1),
        duration_s=60.0,
        parameters={},
        cache_key=None,
        upstream_steps=[],
        error=None,
        metadata={} if parent is None else {"openlineage.parent": parent},
    )


def _run(steps: list[StepView]) -> RunView:
    return RunView(
        run_uuid("dag"), "airflow/etl", "dag", "completed", None, None, "dag",
        T0, T0 + timedelta(minutes=30), 1800.0, None, {}, [], {}, steps=steps,
    )  # fmt: skip


def test_tasks_of_the_run_are_not_nested_and_children_follow_their_parents() -> None:
    steps = [
        _step("a", "etl.a", 0, "airflow/etl run dag"),
        _step("b", "etl.b", 1, "airflow/etl run dag"),
        _step("c", "etl.c", 2, "airflow/etl run dag"),
        _step("spark", "spark.job", 3, "airflow/etl.a run a"),  # started after etl.c
        _step("inner", "spark.stage", 4, "spark/spark.job run spark"),
        _step("deep", "deeper", 5, "spark/spark.stage run inner"),
        _step("deeper", "deepest", 6, "x/deeper run deep"),
        _step("outside", "native", 7, "other/dag.task run 42"),
    ]
    rows = timeline(_run(steps))
    assert [r["step"].name for r in rows] == [
        "etl.a", "spark.job", "spark.stage", "deeper", "deepest", "etl.b", "etl.c", "native",
    ]  # fmt: skip
    depths = {r["step"].name: r["depth"] for r in rows}
    assert depths == {
        "etl.a": 0, "spark.job": 1, "spark.stage": 2, "deeper": MAX_DEPTH, "deepest": MAX_DEPTH,
        "etl.b": 0, "etl.c": 0, "native": 1,
    }  # fmt: skip
    by_name = {r["step"].name: r for r in rows}
    assert by_name["spark.job"]["parent_id"] == run_uuid("a")
    assert by_name["spark.job"]["parent"] == "etl.a"
    assert by_name["native"]["parent"] == "other/dag.task run 42"
    assert by_name["native"]["parent_id"] is None


def test_a_cycle_of_parents_shows_every_step_once_and_ends() -> None:
    steps = [_step("a", "a", 0, "j/b run b"), _step("b", "b", 1, "j/a run a")]
    rows = timeline(_run(steps))
    # The first to start is cut loose (still naming its parent, unlinked); the other nests.
    assert [(r["step"].name, r["depth"], r["parent"], r["parent_id"]) for r in rows] == [
        ("a", 1, "b", None),
        ("b", 1, "a", run_uuid("a")),
    ]


def test_a_retried_parent_is_named_with_its_try() -> None:
    steps = [
        _step("t1", "etl.transform", 0, "airflow/etl run dag"),
        _step("t2", "etl.transform", 2, "airflow/etl run dag"),
        _step("spark", "spark.job", 3, "airflow/etl.transform run t2"),
    ]
    rows = timeline(_run(steps))
    assert [r["step"].name for r in rows] == ["etl.transform", "etl.transform", "spark.job"]
    assert rows[2]["parent"] == "etl.transform (try 2)"
