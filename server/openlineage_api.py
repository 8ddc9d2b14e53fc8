"""OpenLineage over HTTP: ``POST /api/v1/lineage`` and the Marquez-compatible reads.

Ingest (scope ``ingest``) takes one event, a JSON array or NDJSON, plain or
gzip, and answers honestly:

- **201** every event stored or already stored (a duplicate changes nothing);
  a single event answers ``{"status", "kind", "key", "position", ...}``, a
  batch ``{"results": [...], "stored", "duplicate", "invalid"}``;
- **207** a batch in which some events were invalid and the others stored
  (``results`` says which);
- **400** malformed JSON, or no event valid (``{"error": "invalid_event",
  "message": <the reason, naming the place>}``; a batch lists ``results``):
  nothing stored, and clients do not retry a 4xx;
- 401/403 (token), 413 (too large, or more than ``max_batch`` events), 415.

The reads (scope ``read``) answer Marquez's paths with Marquez's field names
for the fields served (see docs/server.md, "OpenLineage"), all through
``ledger.queries(as_of)``: namespaces, a namespace's jobs and datasets, a job's
runs, a run, a dataset's versions, the job/dataset graph (``/lineage``) and
the stored events by eventTime (``/events/lineage``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from eventstore.openlineage import (
    BodyError,
    IngestResult,
    InvalidOpenLineageEvent,
    OpenLineageEvent,
    ingest_parsed,
    parse_event,
    split_body,
)
from eventstore.openlineage.parsing import parse_event_time
from projections.queries import OLDataset, OLDatasetVersion, OLGraphNode, OLJob, OLRun

from .api import json_response
from .auth import require_scope
from .bodies import read_body
from .errors import error_response
from .params import choice, integer, optional_text
from .state import Ledger

__all__ = ["MARQUEZ_PREFIX", "Storer", "lineage_answer", "routes"]

#: Where OpenLineage clients and Marquez tools look.
MARQUEZ_PREFIX = "/api/v1"


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- ingest --------------------------------------------------------------------------


#: Stores parsed events and answers their outcomes (``ingest_parsed`` over the store).
Storer = Callable[[Sequence[OpenLineageEvent | InvalidOpenLineageEvent]], Awaitable[IngestResult]]


async def lineage_post(request: Request) -> Response:
    """``POST /api/v1/lineage``: store OpenLineage events, one result each."""
    store = _ledger(request).store
    return await lineage_answer(request, lambda parsed: ingest_parsed(store, parsed))


async def lineage_answer(request: Request, storer: Storer) -> Response:
    """``POST /api/v1/lineage`` with ``storer`` storing (a benchmark's floor stores nothing)."""
    require_scope(request, "ingest")
    ledger = _ledger(request)
    limits = ledger.config.limits
    body = await read_body(
        request, max_bytes=limits.max_body_bytes, max_decompressed=limits.max_decompressed_bytes
    )
    try:
        pieces = split_body(body)
    except BodyError as exc:
        return error_response(400, str(exc), code="malformed_json")
    if len(pieces) > limits.max_batch:
        return error_response(
            413, f"{len(pieces):,} events in one request, over the limit of {limits.max_batch:,}"
        )
    batch = len(pieces) > 1 or body.lstrip()[:1] == b"["

    def parse() -> list[Any]:
        return [parse_event(index, raw) for index, raw in enumerate(pieces)]

    parsed = await anyio.to_thread.run_sync(parse) if len(body) > 65_536 else parse()
    result = await storer(parsed)
    invalid = result.count("invalid")
    if not batch:
        (outcome,) = result.outcomes
        if outcome.status == "invalid":
            code = "malformed_json" if "malformed JSON" in (outcome.reason or "") else None
            return error_response(400, outcome.reason or "invalid", code=code or "invalid_event")
        fields = outcome.as_json()
        fields.pop("index")
        return json_response(fields, 201)
    report = {
        "stored": result.count("stored"),
        "duplicate": result.count("duplicate"),
        "invalid": invalid,
        "results": [o.as_json() for o in result.outcomes],
    }
    if invalid == len(result.outcomes):
        return error_response(
            400,
            f"none of the {len(result.outcomes):,} events is valid; nothing stored",
            code="invalid_event",
            extra=report,
        )
    return json_response(report, 207 if invalid else 201)


# -- Marquez-compatible reads --------------------------------------------------------


def _reading(request: Request) -> tuple[Ledger, str | None]:
    require_scope(request, "read")
    return _ledger(request), optional_text(request, "as_of")


def _page(request: Request) -> tuple[int, int]:
    return integer(request, "limit", 100, minimum=0, maximum=1000), integer(request, "offset", 0)


def _run_json(run: OLRun, facets: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": run.id,
        "createdAt": _iso(run.created_at),
        "updatedAt": _iso(run.updated_at),
        "nominalStartTime": run.nominal_start_time,
        "nominalEndTime": run.nominal_end_time,
        "state": run.state,
        "startedAt": _iso(run.started_at),
        "endedAt": _iso(run.ended_at),
        "durationMs": run.duration_ms,
        "args": {},
        "jobVersion": {"namespace": run.namespace, "name": run.job, "version": None},
        "inputDatasetVersions": [],
        "outputDatasetVersions": [],
        "context": {},
        "facets": facets if facets is not None else {},
        # metaledger's own: the parent and root runs of the hierarchy.
        "parentRunId": run.parent_run_id,
        "rootRunId": run.root_run_id,
    }


def _job_json(job: OLJob) -> dict[str, Any]:
    return {
        "id": {"namespace": job.namespace, "name": job.name},
        "type": "BATCH",
        "name": job.name,
        "simpleName": job.name.rsplit(".", 1)[-1],
        "parentJobName": None if job.parent_job is None else job.parent_job[1],
        "createdAt": _iso(job.created_at),
        "updatedAt": _iso(job.updated_at),
        "namespace": job.namespace,
        "inputs": [{"namespace": n, "name": d} for n, d in job.inputs],
        "outputs": [{"namespace": n, "name": d} for n, d in job.outputs],
        "location": None,
        "description": None,
        "facets": {},
        "latestRun": None if job.latest_run is None else _run_json(job.latest_run),
    }


def _dataset_json(d: OLDataset) -> dict[str, Any]:
    return {
        "id": {"namespace": d.namespace, "name": d.name},
        "type": "DB_TABLE",
        "name": d.name,
        "physicalName": d.name,
        "createdAt": _iso(d.created_at),
        "updatedAt": _iso(d.updated_at),
        "namespace": d.namespace,
        "sourceName": d.namespace,
        "fields": [],
        "tags": [],
        "lastModifiedAt": _iso(d.updated_at),
        "description": None,
        "facets": {},
        "currentVersion": d.current_version,
    }


def _version_json(v: OLDatasetVersion) -> dict[str, Any]:
    return {
        "id": {"namespace": v.namespace, "name": v.name, "version": v.version},
        "type": "DB_TABLE",
        "name": v.name,
        "physicalName": v.name,
        "createdAt": _iso(v.created_at),
        "version": v.version,
        "namespace": v.namespace,
        "sourceName": v.namespace,
        "fields": [],
        "tags": [],
        "lifecycleState": None,
        "description": None,
        "createdByRun": None if v.run_id is None else {"id": v.run_id},
        "facets": {}
        if v.dataset_version is None
        else {"version": {"datasetVersion": v.dataset_version}},
        # metaledger's own: the artifact version number (v1, v2...).
        "versionNumber": v.number,
    }


async def namespaces(request: Request) -> Response:
    """``GET /api/v1/namespaces``."""
    ledger, as_of = _reading(request)
    async with ledger.queries(as_of) as q:
        found = await q.ol_namespaces()
    return json_response(
        {
            "namespaces": [
                {
                    "name": n.name,
                    "createdAt": _iso(n.created_at),
                    "updatedAt": _iso(n.updated_at),
                    "ownerName": None,
                    "description": None,
                    "isHidden": False,
                }
                for n in found
            ]
        }
    )


async def namespace_reads(request: Request) -> Response:
    """``GET /api/v1/namespaces/{ns}/...``: the path's segments, each percent-decoded.

    Namespaces and names hold ``/`` and ``:`` (``s3://lake``), which clients send
    percent-encoded; the raw path is split first, then each segment decoded.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw.decode("latin-1").split("?", 1)[0][len(f"{MARQUEZ_PREFIX}/namespaces/") :]
    parts = [unquote(p) for p in tail.split("/")]
    match parts:
        case [ns, "jobs"]:
            return await jobs(request, ns)
        case [ns, "jobs", job, "runs"]:
            return await job_runs(request, ns, job)
        case [ns, "datasets"]:
            return await datasets(request, ns)
        case [ns, "datasets", ds, "versions"]:
            return await dataset_versions(request, ns, ds)
    return error_response(404, f"no such path: {request.url.path}")


async def jobs(request: Request, ns: str) -> Response:
    """``GET /api/v1/namespaces/{ns}/jobs``."""
    ledger, as_of = _reading(request)
    limit, offset = _page(request)
    async with ledger.queries(as_of) as q:
        found, total = await q.ol_jobs(ns, limit=limit, offset=offset)
    return json_response({"jobs": [_job_json(j) for j in found], "totalCount": total})


async def job_runs(request: Request, ns: str, job: str) -> Response:
    """``GET /api/v1/namespaces/{ns}/jobs/{job}/runs``."""
    ledger, as_of = _reading(request)
    limit, offset = _page(request)
    async with ledger.queries(as_of) as q:
        found, total = await q.ol_runs(ns, job, limit=limit, offset=offset)
    return json_response({"runs": [_run_json(r) for r in found], "totalCount": total})


async def run(request: Request) -> Response:
    """``GET /api/v1/jobs/runs/{id}``: with the run's facets merged in eventTime order."""
    ledger, as_of = _reading(request)
    async with ledger.queries(as_of) as q:
        found = await q.ol_run(request.path_params["id"])
        facets: dict[str, Any] = {}
        for document in await q.ol_run_events(found):
            run_node = document.get("run")
            if isinstance(run_node, dict) and isinstance(run_node.get("facets"), dict):
                facets.update(run_node["facets"])
    return json_response(_run_json(found, facets))


async def datasets(request: Request, ns: str) -> Response:
    """``GET /api/v1/namespaces/{ns}/datasets``."""
    ledger, as_of = _reading(request)
    limit, offset = _page(request)
    async with ledger.queries(as_of) as q:
        found, total = await q.ol_datasets(ns, limit=limit, offset=offset)
    return json_response({"datasets": [_dataset_json(d) for d in found], "totalCount": total})


async def dataset_versions(request: Request, ns: str, ds: str) -> Response:
    """``GET /api/v1/namespaces/{ns}/datasets/{ds}/versions``."""
    ledger, as_of = _reading(request)
    limit, offset = _page(request)
    async with ledger.queries(as_of) as q:
        found, total = await q.ol_dataset_versions(ns, ds, limit=limit, offset=offset)
    return json_response({"versions": [_version_json(v) for v in found], "totalCount": total})


def _node_json(node: OLGraphNode) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": {"namespace": node.namespace, "name": node.name},
        "namespace": node.namespace,
        "name": node.name,
        "type": "BATCH" if node.type == "JOB" else "DB_TABLE",
    }
    return {
        "id": node.id,
        "type": node.type,
        "data": data,
        "inEdges": [{"origin": a, "destination": b} for a, b in node.in_edges],
        "outEdges": [{"origin": a, "destination": b} for a, b in node.out_edges],
    }


async def lineage_graph(request: Request) -> Response:
    """``GET /api/v1/lineage?nodeId=&depth=``."""
    ledger, as_of = _reading(request)
    node_id = optional_text(request, "nodeId")
    if node_id is None:
        return error_response(400, "nodeId is required (job:NAMESPACE:NAME or dataset:...)")
    depth = integer(request, "depth", 20, minimum=0, maximum=100)
    async with ledger.queries(as_of) as q:
        graph = await q.ol_lineage(node_id, depth)
    return json_response({"graph": [_node_json(n) for n in graph]})


def _time_param(request: Request, name: str) -> int | None:
    value = optional_text(request, name)
    if value is None:
        return None
    try:
        return parse_event_time(value)
    except ValueError:
        return _bad(f"{name}={value[:40]!r}: give an RFC 3339 date-time")


def _bad(message: str) -> int:
    from starlette.exceptions import HTTPException

    raise HTTPException(400, message)


async def events_lineage(request: Request) -> Response:
    """``GET /api/v1/events/lineage?before&after&limit&offset&sortDirection``."""
    ledger, as_of = _reading(request)
    limit, offset = _page(request)
    direction = choice(request, "sortDirection", ("asc", "desc")) or "desc"
    async with ledger.queries(as_of) as q:
        page = await q.ol_events(
            before_us=_time_param(request, "before"),
            after_us=_time_param(request, "after"),
            limit=limit,
            offset=offset,
            ascending=direction == "asc",
        )
    # The stored texts are spliced in whole: each event exactly as it was received.
    body = (
        b'{"events":['
        + b",".join(e.encode() for e in page.events)
        + b'],"totalCount":'
        + str(page.total_count).encode()
        + b"}"
    )
    return Response(body, media_type="application/json")


routes: list[BaseRoute] = [
    Route(f"{MARQUEZ_PREFIX}/lineage", lineage_post, methods=["POST"]),
    Route(f"{MARQUEZ_PREFIX}/lineage", lineage_graph, methods=["GET"]),
    Route(f"{MARQUEZ_PREFIX}/namespaces", namespaces, methods=["GET"]),
    Route(f"{MARQUEZ_PREFIX}/namespaces/{{rest:path}}", namespace_reads, methods=["GET"]),
    Route(f"{MARQUEZ_PREFIX}/jobs/runs/{{id}}", run, methods=["GET"]),
    Route(f"{MARQUEZ_PREFIX}/events/lineage", events_lineage, methods=["GET"]),
]
