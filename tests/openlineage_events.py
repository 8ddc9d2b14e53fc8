"""Builders of OpenLineage events for tests: an Airflow-like DAG run and its tasks.

Not collected by pytest (no ``test_`` prefix); the library, view, CLI and
server tests share it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/1.0.0"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def when(minutes: float) -> str:
    """An RFC 3339 time ``minutes`` after T0."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def facet(**fields: Any) -> dict[str, Any]:
    """A facet with its required ``_producer`` and ``_schemaURL``."""
    return {"_producer": PRODUCER, "_schemaURL": SCHEMA.replace("RunEvent", "Facet"), **fields}


def parent_facet(run_id: str, namespace: str, name: str, root: tuple[str, str, str] | None = None):
    """A ParentRunFacet naming the parent run (and optionally the root run)."""
    body: dict[str, Any] = {"run": {"runId": run_id}, "job": {"namespace": namespace, "name": name}}
    if root is not None:
        body["root"] = {"run": {"runId": root[0]}, "job": {"namespace": root[1], "name": root[2]}}
    return facet(**body)


def run_event(
    event_type: str,
    run_id: str,
    name: str,
    minutes: float,
    *,
    namespace: str = "airflow",
    parent: dict[str, Any] | None = None,
    inputs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    outputs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    error: str | None = None,
    nominal: str | None = None,
) -> dict[str, Any]:
    """A RunEvent as a dict."""
    facets: dict[str, Any] = {}
    if parent is not None:
        facets["parent"] = parent
    if error is not None:
        facets["errorMessage"] = facet(message=error, programmingLanguage="python")
    if nominal is not None:
        facets["nominalTime"] = facet(nominalStartTime=nominal)
    return {
        "eventType": event_type,
        "eventTime": when(minutes),
        "producer": PRODUCER,
        "schemaURL": SCHEMA,
        "run": {"runId": run_id, "facets": facets},
        "job": {"namespace": namespace, "name": name, "facets": {}},
        "inputs": [{"namespace": ns, "name": n, "facets": {}} for ns, n in inputs],
        "outputs": [{"namespace": ns, "name": n, "facets": {}} for ns, n in outputs],
    }


def dag_run_events(seed: int = 0) -> dict[str, Any]:
    """An Airflow-like DAG run: three tasks (one failed try and its retry), a Spark child job.

    Returns ``{"events": [...], "dag": run_id, "tasks": {...}, "spark": run_id}``.
    """
    rng = uuid.UUID(int=seed * 1_000_003 + 7)
    ids = [str(uuid.uuid5(rng, str(n))) for n in range(8)]
    dag, extract, transform_1, transform_2, load, spark = ids[:6]
    dag_parent = parent_facet(dag, "airflow", "etl")
    events = [
        run_event("START", dag, "etl", 0, nominal=when(0)),
        run_event("START", extract, "etl.extract", 1, parent=dag_parent),
        run_event(
            "COMPLETE",
            extract,
            "etl.extract",
            2,
            parent=dag_parent,
            inputs=[("postgres://db:5432", "shop.public.orders")],
            outputs=[("s3://lake", "raw/orders")],
        ),
        run_event("START", transform_1, "etl.transform", 3, parent=dag_parent),
        run_event("FAIL", transform_1, "etl.transform", 4, parent=dag_parent, error="OOM"),
        run_event("START", transform_2, "etl.transform", 5, parent=dag_parent),
        run_event(
            "START",
            spark,
            "spark_app.execute_insert",
            5.5,
            namespace="spark",
            parent=parent_facet(transform_2, "airflow", "etl.transform"),
            inputs=[("s3://lake", "raw/orders")],
        ),
        run_event(
            "COMPLETE",
            spark,
            "spark_app.execute_insert",
            6,
            namespace="spark",
            parent=parent_facet(transform_2, "airflow", "etl.transform"),
            inputs=[("s3://lake", "raw/orders")],
            outputs=[("s3://lake", "clean/orders")],
        ),
        run_event("COMPLETE", transform_2, "etl.transform", 7, parent=dag_parent),
        run_event("START", load, "etl.load", 8, parent=dag_parent),
        run_event(
            "ABORT",
            load,
            "etl.load",
            9,
            parent=dag_parent,
            inputs=[("s3://lake", "clean/orders")],
        ),
        run_event("COMPLETE", dag, "etl", 10, nominal=when(0)),
    ]
    return {
        "events": events,
        "dag": dag,
        "tasks": {
            "extract": extract,
            "transform_1": transform_1,
            "transform_2": transform_2,
            "load": load,
        },
        "spark": spark,
    }


def ndjson(events: list[dict[str, Any]]) -> bytes:
    """Events as NDJSON, one per line (what FileTransport writes)."""
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)
