"""The real openlineage-python client emits to ``metaledger serve``; the reads all agree.

HttpTransport (gzip on and off, an api_key token) and AsyncHttpTransport send an
Airflow-like DAG run: three task runs (one failed try and its retry), a Spark
child job whose COMPLETE arrives before its START, an ABORT, and duplicates. The
server runs on a real port (``tests/server_process.py``), on SQLite and on
PostgreSQL. Bad input is a 400 with a JSON body and stores nothing.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, nominal_time_run, parent_run
from openlineage.client.transport.async_http import AsyncHttpConfig, AsyncHttpTransport
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

from .openlineage_events import PRODUCER, dag_run_events, run_event
from .server_process import ServerProcess, running_server
from .test_server import metaledger

pytestmark = pytest.mark.slow

DAG = dag_run_events(seed=3)
API = "/api/v1"


def to_client(event: dict[str, Any]) -> RunEvent:
    """One of our event dicts as the client's RunEvent (the client adds facet producers)."""
    facets: dict[str, Any] = {}
    given = event["run"]["facets"]
    if "parent" in given:
        p = given["parent"]
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=p["run"]["runId"]),
            job=parent_run.Job(namespace=p["job"]["namespace"], name=p["job"]["name"]),
        )
    if "errorMessage" in given:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=given["errorMessage"]["message"], programmingLanguage="python"
        )
    if "nominalTime" in given:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=given["nominalTime"]["nominalStartTime"]
        )
    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=facets),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        producer=PRODUCER,
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in event["inputs"]],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in event["outputs"]],
    )


def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (the views catch up in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"the server's views did not catch up in time: {value!r}"
        )
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a SQLite directory, or a PostgreSQL schema prefix."""
    if request.param == "postgres":
        uri: str = request.getfixturevalue("postgres_uri")
        return uri
    return str(tmp_path / "store")


@pytest.fixture
def served(store_uri: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str, str]]:
    """A server with tokens: (server, store, ingest token, read token)."""
    path = tmp_path / "tokens.json"
    ingest = metaledger("x", "token", "create", "airflow", "--scope", "ingest",
                        "--token-file", str(path))["token"]  # fmt: skip
    read = metaledger("x", "token", "create", "dash", "--scope", "read",
                      "--token-file", str(path))["token"]  # fmt: skip
    with running_server(store_uri, extra_args=["--token-file", str(path)]) as server:
        yield server, store_uri, ingest, read


def test_the_real_client_emits_a_dag_run(served: tuple[ServerProcess, str, str, str]) -> None:
    """Sync (gzip and plain) and async transports; then views, Marquez reads and CLI agree."""
    server, store, ingest, read = served
    events = DAG["events"]
    spark = [e for e in events if e["job"]["namespace"] == "spark"]
    auth = ApiKeyTokenProvider({"apiKey": ingest})
    gzipped = OpenLineageClient(
        transport=HttpTransport(
            HttpConfig(url=server.url, auth=auth, compression=HttpCompression.GZIP)
        )
    )
    plain = OpenLineageClient(transport=HttpTransport(HttpConfig(url=server.url, auth=auth)))
    for event in events[:6]:
        gzipped.emit(to_client(event))
    # The Spark job's COMPLETE before its START; then the rest, one duplicate among them.
    for event in [spark[1], spark[0], *events[8:11], events[3]]:
        plain.emit(to_client(event))
    transport = AsyncHttpTransport(
        AsyncHttpConfig(url=server.url, auth=auth, compression=HttpCompression.GZIP)
    )
    # Through a client too, which adds the same facets (tags) as the others: a
    # resent event is then the same content, a duplicate.
    async_client = OpenLineageClient(transport=transport)
    try:
        for event in [events[0], events[1], events[-1], events[4]]:
            async_client.emit(to_client(event))
        assert transport.wait_for_completion(timeout=30)
        assert 0 == transport.get_stats()["failed"]
    finally:
        transport.close(timeout=10)

    headers = {"Authorization": f"Bearer {read}"}

    def get(path: str, **params: Any) -> Any:
        answer = httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    page = until(lambda: (p := get(f"{API}/events/lineage", limit=100))["totalCount"] == 12 and p)
    assert 12 == len(page["events"])
    oldest = get(f"{API}/events/lineage", sortDirection="asc", limit=1)["events"][0]
    assert ("START", "etl") == (oldest["eventType"], oldest["job"]["name"])

    # The views: one pipeline run, its steps, through the server's read API and the CLI.
    def dag_run() -> Any:
        answer = httpx.get(
            f"{server.url}/api/metaledger/v1/runs/{DAG['dag']}", headers=headers, timeout=30
        )
        return answer.status_code == 200 and answer.json()

    until(lambda: (r := dag_run()) and r["status"] == "completed" and len(r["steps"]) == 5)
    run = dag_run()
    described = metaledger(store, "run", "describe", DAG["dag"])
    assert run["steps"] == described["steps"]
    statuses = sorted((s["name"], s["status"]) for s in run["steps"])
    assert [
        ("etl.extract", "completed"),
        ("etl.load", "stopped"),
        ("etl.transform", "completed"),
        ("etl.transform", "failed"),
        ("spark_app.execute_insert", "completed"),
    ] == statuses
    (pipeline,) = [p for p in metaledger(store, "pipeline", "list") if p["name"] == "airflow/etl"]
    assert 1 == pipeline["runs"]

    # Marquez-compatible reads.
    names = {n["name"] for n in get(f"{API}/namespaces")["namespaces"]}
    assert {"airflow", "spark", "s3://lake", "postgres://db:5432"} <= names
    # As of the first event: only the DAG run's START had arrived.
    first = min(
        e["position"] for e in metaledger(store, "events", "list", "--type", "openlineage.received")
    )
    assert ["airflow"] == [
        n["name"] for n in get(f"{API}/namespaces", as_of=str(first))["namespaces"]
    ]
    jobs = get(f"{API}/namespaces/airflow/jobs")
    assert {"etl", "etl.extract", "etl.transform", "etl.load"} == {j["name"] for j in jobs["jobs"]}
    runs = get(f"{API}/namespaces/airflow/jobs/etl.transform/runs")
    assert ["COMPLETED", "FAILED"] == [r["state"] for r in runs["runs"]]
    spark_run = get(f"{API}/jobs/runs/{DAG['spark']}")
    assert "COMPLETED" == spark_run["state"]
    assert 30_000 == spark_run["durationMs"]
    assert DAG["tasks"]["transform_2"] == spark_run["facets"]["parent"]["run"]["runId"]
    ns = quote("s3://lake", safe="")
    datasets = get(f"{API}/namespaces/{ns}/datasets")
    assert {"raw/orders", "clean/orders"} == {d["name"] for d in datasets["datasets"]}
    versions = get(f"{API}/namespaces/{ns}/datasets/{quote('clean/orders', safe='')}/versions")
    assert [DAG["spark"]] == [v["createdByRun"]["id"] for v in versions["versions"]]

    def graph() -> Any:
        found = get(f"{API}/lineage", nodeId="dataset:s3://lake:clean/orders", depth=5)["graph"]
        return {n["id"]: n for n in found}

    nodes = until(lambda: (g := graph()) and "job:airflow:etl.extract" in g and g)
    clean = nodes["dataset:s3://lake:clean/orders"]
    assert [("job:spark:spark_app.execute_insert", "dataset:s3://lake:clean/orders")] == [
        (e["origin"], e["destination"]) for e in clean["inEdges"]
    ]
    assert [("dataset:s3://lake:clean/orders", "job:airflow:etl.load")] == [
        (e["origin"], e["destination"]) for e in clean["outEdges"]
    ]
    assert metaledger(store, "verify")["ok"]


def test_bad_input_is_a_400_and_stores_nothing(
    served: tuple[ServerProcess, str, str, str],
) -> None:
    """Malformed JSON, wrong types, missing fields: 400 naming the problem; bad tokens 401/403;
    a batch stores its valid events and answers per event; the server keeps serving."""
    server, _, ingest, read = served
    url = f"{server.url}{API}/lineage"
    auth = {"Authorization": f"Bearer {ingest}", "Content-Type": "application/json"}
    good = run_event("START", "5b0c7d2e-1f3a-4c5d-8e9f-0a1b2c3d4e5f", "job", 0)
    wrong_type = {**good, "run": {"runId": 7}}
    missing = {k: v for k, v in good.items() if k != "job"}
    cases = [
        (b'{"eventType": "START", ', "malformed_json"),
        (json.dumps(wrong_type).encode(), "invalid_event"),
        (json.dumps(missing).encode(), "invalid_event"),
        (gzip.compress(b"{not json"), "malformed_json"),
    ]
    for body, code in cases:
        headers = dict(auth)
        if body[:2] == b"\x1f\x8b":
            headers["Content-Encoding"] = "gzip"
        answer = httpx.post(url, content=body, headers=headers)
        assert 400 == answer.status_code, answer.text
        assert code == answer.json()["error"]
        assert answer.json()["message"]
    assert 401 == httpx.post(url, content=json.dumps(good)).status_code
    read_auth = {"Authorization": f"Bearer {read}"}
    assert 403 == httpx.post(url, content=json.dumps(good), headers=read_auth).status_code
    total = httpx.get(f"{server.url}{API}/events/lineage", headers=read_auth).json()["totalCount"]
    assert 0 == total

    batch = json.dumps([good, missing, good]).encode()
    answer = httpx.post(url, content=batch, headers=auth)
    assert 207 == answer.status_code
    assert ["stored", "invalid", "duplicate"] == [r["status"] for r in answer.json()["results"]]
    again = httpx.post(url, content=json.dumps(good, indent=2), headers=auth)
    assert (201, "duplicate") == (again.status_code, again.json()["status"])
    assert 200 == httpx.get(f"{server.url}/healthz").status_code
