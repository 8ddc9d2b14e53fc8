"""metaledger's own API under ``/api/metaledger/v1``: reads, the write API, the stream.

Reads answer the same data in the same JSON shapes as the CLI's ``--json``:
the CLI's item functions (``cli.runs.run_item``, ``cli.stacks.stack_item``...)
build both, and the query Structs are encoded by msgspec as the CLI encodes
them. Every read takes ``as_of`` (a position or a time, as ``--as-of``) and
goes through :meth:`server.state.Ledger.queries`. Secrets are masked as the
CLI masks them, unless ``show_secrets=true``. Listings return the CLI's array;
a page that may continue carries ``Link: <...>; rel="next"``.

Writes (``POST /events``) take the JSON-lines format of ``events append``,
with its validation and idempotency. The live stream is in :mod:`server.stream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cli.artifacts import artifact_describe_item, artifact_item
from cli.components import component_item, components_with_active
from cli.context import parse_time
from cli.events import list_item
from cli.pipelines import pipeline_item
from cli.runs import describe_item, run_item
from cli.stacks import stack_item
from cli.verify import verify_item
from eventstore import AppendError, BadLinesError, RuleBreachError, append_lines, parse_lines
from eventstore.logs import get_logger

from .auth import require_scope
from .bodies import read_body
from .errors import error_response, status_of
from .params import PREFIX, boolean, choice, integer, optional_text
from .state import Ledger, resolve_as_of
from .stream import event_stream

__all__ = ["MAX_PAGE", "PREFIX", "json_response", "routes"]

log = get_logger("server.api")

#: The most items one listing answers; pages continue with ``after`` (runs) or ``from``.
MAX_PAGE = 1000
#: "open": an OpenLineage run that sent no end event while all its steps ended.
_RUN_STATUSES = ("running", "open", "completed", "failed", "stopped")
_encoder = msgspec.json.Encoder()


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``data`` (Structs, datetimes, builtins) as JSON, encoded as the CLI's ``--json``."""
    return Response(
        _encoder.encode(data),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _reading(request: Request) -> tuple[Ledger, str | None, bool]:
    """Check the read scope; the ledger, ``as_of`` and ``show_secrets`` of a read."""
    require_scope(request, "read")
    return (
        _ledger(request),
        optional_text(request, "as_of"),
        boolean(request, "show_secrets", default=False),
    )


def _next_link(request: Request, **changes: Any) -> dict[str, str]:
    query = {**request.query_params, **{k: str(v) for k, v in changes.items()}}
    return {"Link": f'<{request.url.path}?{urlencode(query)}>; rel="next"'}


def _mask(data: Any, show: bool) -> Any:
    from eventstore.secret_masking import mask_secrets

    return mask_secrets(data, show=show)


# -- stacks, components, pipelines ---------------------------------------------------


async def stacks(request: Request) -> Response:
    """``GET /stacks``: as ``stack list --json``."""
    ledger, as_of, _ = _reading(request)
    async with ledger.queries(as_of) as q:
        return json_response([stack_item(s) for s in await q.stacks()])


async def stack(request: Request) -> Response:
    """``GET /stacks/{ref}``: as ``stack describe REF --json`` (``active``: the active one)."""
    ledger, as_of, _ = _reading(request)
    ref = request.path_params["ref"]
    async with ledger.queries(as_of) as q:
        return json_response(stack_item(await q.stack(None if ref == "active" else ref)))


async def components(request: Request) -> Response:
    """``GET /components?type=``: as ``component TYPE list --json`` (every type without)."""
    ledger, as_of, show = _reading(request)
    component_type = optional_text(request, "type")
    async with ledger.queries(as_of) as q:
        found, active = await components_with_active(q, component_type)
    return json_response(
        [component_item(c, active=c.component_id in active, show_secrets=show) for c in found]
    )


async def component(request: Request) -> Response:
    """``GET /components/{type}/{ref}``: as ``component TYPE describe REF --json``."""
    ledger, as_of, show = _reading(request)
    component_type, ref = request.path_params["type"], request.path_params["ref"]
    async with ledger.queries(as_of) as q:
        found = await q.component(component_type, None if ref == "active" else ref)
        _, active = await components_with_active(q, component_type)
    return json_response(
        component_item(found, active=found.component_id in active, show_secrets=show)
    )


async def pipelines(request: Request) -> Response:
    """``GET /pipelines``: as ``pipeline list --json``."""
    ledger, as_of, _ = _reading(request)
    async with ledger.queries(as_of) as q:
        return json_response([pipeline_item(p) for p in await q.pipelines()])


# -- runs ----------------------------------------------------------------------------


async def runs(request: Request) -> Response:
    """``GET /runs``: as ``run list --json``, with its filters; ``after`` continues a page.

    Filters: ``pipeline``, ``status``, ``stack``, ``since``, ``until`` (a time or
    an age), ``limit`` (default 50, at most 1000). When more runs may follow, a
    ``Link`` header gives the next page (``after`` = the page's last run id).
    """
    ledger, as_of, show = _reading(request)
    since, until = optional_text(request, "since"), optional_text(request, "until")
    filters: dict[str, Any] = {
        "pipeline": optional_text(request, "pipeline"),
        "status": choice(request, "status", _RUN_STATUSES),
        "stack": optional_text(request, "stack"),
        "since": parse_time(since) if since else None,
        "until": parse_time(until) if until else None,
    }
    limit = integer(request, "limit", 50, minimum=1, maximum=MAX_PAGE)
    after = optional_text(request, "after")
    async with ledger.queries(as_of) as q:
        found = await q.runs(**filters, limit=limit + 1, after=after)
    page = found[:limit]
    headers = _next_link(request, after=page[-1].run_id) if len(found) > limit else {}
    return json_response(_mask([run_item(r) for r in page], show), headers=headers)


async def run(request: Request) -> Response:
    """``GET /runs/{ref}``: as ``run describe REF --json``: the run, its metadata and steps."""
    ledger, as_of, show = _reading(request)
    async with ledger.queries(as_of) as q:
        found = await q.run(request.path_params["ref"])
    return json_response(_mask(describe_item(found), show))


# -- artifacts and lineage -------------------------------------------------------------


async def artifacts(request: Request) -> Response:
    """``GET /artifacts``: as ``artifact list --json`` (``type``, ``run``, ``name``, ``limit``)."""
    ledger, as_of, show = _reading(request)
    limit = integer(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    async with ledger.queries(as_of) as q:
        found = await q.artifacts(
            artifact_type=optional_text(request, "type"),
            run=optional_text(request, "run"),
            name=optional_text(request, "name"),
            limit=limit,
        )
    return json_response(_mask([artifact_item(a) for a in found], show))


async def artifact(request: Request) -> Response:
    """``GET /artifacts/{ref}``: as ``artifact describe REF --json``, with its consumers."""
    ledger, as_of, show = _reading(request)
    async with ledger.queries(as_of) as q:
        found = await q.artifact(request.path_params["ref"])
    return json_response(artifact_describe_item(found, show_secrets=show))


async def lineage(request: Request) -> Response:
    """``GET /lineage?artifact=REF`` (or ``run=REF``): as ``artifact lineage --json``.

    ``direction``: ``upstream``, ``downstream`` or ``both`` (default); ``depth``
    step-hops (default 3, at most 50).
    """
    ledger, as_of, _ = _reading(request)
    artifact_ref, run_ref = optional_text(request, "artifact"), optional_text(request, "run")
    if (artifact_ref is None) == (run_ref is None):
        raise HTTPException(400, "give one of artifact=REF and run=REF")
    direction = choice(request, "direction", ("upstream", "downstream", "both")) or "both"
    depth = integer(request, "depth", 3, minimum=0, maximum=50)
    async with ledger.queries(as_of) as q:
        graph = await q.lineage(
            artifact=artifact_ref,
            run=run_ref,
            direction=direction,  # type: ignore[arg-type]
            depth=depth,
        )
    return json_response(graph)


# -- the log: events, verify, projections -----------------------------------------------


async def events(request: Request) -> Response:
    """``GET /events?from=&to=&limit=&type=``: as ``events list --json``, in log order.

    ``from`` (default 1) and ``to`` bound the positions; ``as_of`` is another
    upper bound (a position or a time); ``type`` (repeatable) filters. At most
    ``limit`` (default 100, at most 1000); a ``Link`` header continues.
    """
    ledger, as_of, show = _reading(request)
    start = integer(request, "from", 1, minimum=1)
    to = integer(request, "to", 0, minimum=1) or None
    limit = integer(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    types = request.query_params.getlist("type") or None
    if as_of is not None:
        point = await resolve_as_of(ledger.store, as_of)
        cap = point.position if point.position is not None else None
        if point.when is not None:
            cap = await ledger.store.position_at(point.when)
        to = cap if to is None or cap is None else min(to, cap)
    items = []
    async for row in ledger.store.log.read_stored(
        start, limit=limit + 1, types=types, to_position=to
    ):
        items.append(list_item(row, show_secrets=show))
    page = items[:limit]
    headers = (
        _next_link(request, **{"from": page[-1]["position"] + 1}) if len(items) > limit else {}
    )
    return json_response(page, headers=headers)


async def verify(request: Request) -> Response:
    """``GET /verify``: as ``verify --json`` (walks the whole log; faults from the live views)."""
    require_scope(request, "read")
    ledger = _ledger(request)
    report = await ledger.store.verify()
    faults = [
        {"projection": f.projection, "position": f.position, "reason": f.reason}
        for f in (await ledger.views.faults() if report.ok else [])
    ]
    return json_response(verify_item(report, faults))


async def projections(request: Request) -> Response:
    """``GET /projections``: as ``projections status --json`` (the live views, not caught up)."""
    require_scope(request, "read")
    return json_response(await _ledger(request).views.status())


# -- the write API ---------------------------------------------------------------------


async def append_events(request: Request) -> Response:
    """``POST /events``: JSON lines as ``events append``; all appended or none.

    201 with ``appended``, ``already_stored``, ``first_position``,
    ``last_position`` when something was appended; 200 when every event was
    stored already (a retry of the same body appends nothing). 400 for bad
    lines (``faults`` lists them), 422 for lines the domain rules refuse, 409
    for a concurrency conflict (retry), 413 beyond the limits.
    """
    require_scope(request, "ingest")
    ledger = _ledger(request)
    limits = ledger.config.limits
    body = await read_body(
        request, max_bytes=limits.max_body_bytes, max_decompressed=limits.max_decompressed_bytes
    )
    count = sum(1 for line in body.split(b"\n") if line.strip())
    if count > limits.max_batch:
        return error_response(
            413, f"{count:,} events in one request, over the limit of {limits.max_batch:,}"
        )
    try:
        parsed = parse_lines(body, ledger.store.codec)
        result = await append_lines(ledger.store, parsed)
    except RuleBreachError as exc:
        return error_response(422, str(exc), code="rule_breach", extra={"faults": exc.faults})
    except BadLinesError as exc:
        return error_response(400, str(exc), code="bad_lines", extra={"faults": exc.faults})
    except AppendError as exc:
        return error_response(status_of(exc), str(exc), extra={"line": exc.line})
    report = {
        "appended": result.appended,
        "already_stored": result.already_stored,
        "first_position": result.first_position,
        "last_position": result.last_position,
    }
    return json_response(report, 201 if result.appended else 200)


routes: list[BaseRoute] = [
    Route(f"{PREFIX}/stacks", stacks, methods=["GET"]),
    Route(f"{PREFIX}/stacks/{{ref}}", stack, methods=["GET"]),
    Route(f"{PREFIX}/components", components, methods=["GET"]),
    Route(f"{PREFIX}/components/{{type}}/{{ref}}", component, methods=["GET"]),
    Route(f"{PREFIX}/pipelines", pipelines, methods=["GET"]),
    Route(f"{PREFIX}/runs", runs, methods=["GET"]),
    Route(f"{PREFIX}/runs/{{ref}}", run, methods=["GET"]),
    Route(f"{PREFIX}/artifacts", artifacts, methods=["GET"]),
    Route(f"{PREFIX}/artifacts/{{ref}}", artifact, methods=["GET"]),
    Route(f"{PREFIX}/lineage", lineage, methods=["GET"]),
    Route(f"{PREFIX}/events", events, methods=["GET"]),
    Route(f"{PREFIX}/events", append_events, methods=["POST"]),
    Route(f"{PREFIX}/events/stream", event_stream, methods=["GET"]),
    Route(f"{PREFIX}/verify", verify, methods=["GET"]),
    Route(f"{PREFIX}/projections", projections, methods=["GET"]),
]
