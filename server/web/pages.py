"""The pages about runs: the runs list, one run, one artifact, a lineage graph.

Each handler reads through ``ledger.queries(as_of)``, the one query path the
JSON API reads too, and fills a template. Nothing here queries the views
another way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from projections.queries import ArtifactView, LineageGraph
from projections.queries.lineage import Direction
from server.state import Ledger

from .errors import BadPageInput, page_errors
from .lineage_graph import lineage_svg
from .render import Page, as_of_of, render
from .runs_cursor import RunFilters, runs_page
from .timeline import timeline

#: Runs per page of the runs list.
PAGE_SIZE = 50
#: The most runs one page shows (``?limit=``).
MAX_PAGE = 500
#: The lineage depths the selector offers (step-hops each way).
DEPTHS = (1, 2, 3, 5, 8, 12, 20)
#: The runs list counts its runs up to this many (an exact count of 100,000
#: costs as much as the page); beyond, it says "more than".
COUNT_BOUND = 10_000
RUN_STATUSES = ("running", "completed", "failed", "stopped")
_DIRECTIONS: dict[str, Direction] = {d: d for d in ("upstream", "downstream", "both")}


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _time_param(request: Request, name: str) -> datetime | None:
    """A ``datetime-local`` field (UTC, as the page shows times) or ISO-8601 text."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadPageInput(f"{name}: {text!r} is not a time (2026-11-28T08:00:00)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _filters(request: Request) -> RunFilters:
    params = request.query_params
    return RunFilters(
        pipeline=params.get("pipeline") or None,
        status=params.get("status") or None,
        stack=params.get("stack") or None,
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
    )


@page_errors
async def runs_list(request: Request) -> Response:
    """``/``: runs newest first, filtered, a page at a time; live unless a past view."""
    ledger = _ledger(request)
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    limit = _whole(request, "limit", PAGE_SIZE, most=MAX_PAGE)
    head = await ledger.store.head()
    fragment = "fragment" in request.query_params
    # Read before the query: the rows include at least this much of the log.
    views_at = await _views_position(ledger) if fragment else None
    async with ledger.queries(as_of_of(request)) as q:
        page_runs, next_cursor = await runs_page(q, filters, cursor=cursor, limit=limit)
        # Counted up to a bound: past it the page says "more than 10,000 runs".
        total = await q.count_runs(**filters.as_kwargs(), most=COUNT_BOUND + 1)
        stacks = [] if fragment else [s.name for s in await q.stacks()]
    page = Page(request)
    base = {k: v for k, v in request.query_params.items() if k not in ("cursor", "fragment")}
    context: dict[str, Any] = {
        "runs": page_runs,
        "total": total,
        "count_bound": COUNT_BOUND,
        "filtered": filters.any(),
        "filters": {k: request.query_params.get(k, "") for k in RunFilters.fields()},
        "cursor": cursor,
        "next_url": page.url("/", **{**base, "cursor": next_cursor}) if next_cursor else None,
        "first_url": page.url("/", **base),
        "fragment": page.url("/", **base, cursor=cursor, fragment="1"),
        "statuses": RUN_STATUSES,
        "stacks": stacks,
    }
    if fragment:
        response = render(request, "_runs_table.html", context, head=head)
        # The live page refreshes on the log's events, but the views follow the log
        # a moment behind: it asks again until they include the last event it saw.
        response.headers["X-Views-Position"] = str(views_at)
        return response
    return render(request, "runs.html", context, head=head)


async def _views_position(ledger: Ledger) -> int:
    """How far every live view has applied the log (the least of their positions)."""
    states = await ledger.views.runner.refresh()
    return min((s.position for s in states.values() if s.status == "live"), default=0)


@page_errors
async def run_page(request: Request) -> Response:
    """``/runs/{ref}``: the run, its steps as a timeline, its artifacts, its audit trail."""
    ledger = _ledger(request)
    ref = request.path_params["ref"]
    async with ledger.queries(as_of_of(request)) as q:
        run = await q.run(ref)
        produced = await q.artifacts(run=run.run_id, limit=None)
        history = await q.history("run", run.run_id)
    head = await ledger.store.head()
    names = {a.artifact_id: f"{a.name}:v{a.version}" for a in produced}
    context = {
        "run": run,
        "timeline": timeline(run),
        "artifact_names": names,
        "produced": list(reversed(produced)),
        "history": history,
    }
    return render(request, "run.html", context, head=head)


@page_errors
async def artifact_page(request: Request) -> Response:
    """``/artifacts/{ref}``: an artifact version, its versions, producer and consumers."""
    ledger = _ledger(request)
    ref = request.path_params["ref"]
    async with ledger.queries(as_of_of(request)) as q:
        artifact: ArtifactView = await q.artifact(ref)
        versions = await q.artifacts(name=artifact.name, limit=100)
    head = await ledger.store.head()
    return render(request, "artifact.html", {"artifact": artifact, "versions": versions}, head=head)


@page_errors
async def artifacts_list(request: Request) -> Response:
    """``/artifacts``: the newest artifact versions."""
    ledger = _ledger(request)
    async with ledger.queries(as_of_of(request)) as q:
        found = await q.artifacts(limit=200)
        total = await q.count_artifacts()
    head = await ledger.store.head()
    return render(request, "artifacts.html", {"artifacts": found, "total": total}, head=head)


@page_errors
async def pipelines_list(request: Request) -> Response:
    """``/pipelines``: pipelines by their latest run."""
    ledger = _ledger(request)
    async with ledger.queries(as_of_of(request)) as q:
        found = await q.pipelines()
    head = await ledger.store.head()
    return render(request, "pipelines.html", {"pipelines": found}, head=head)


def _whole(request: Request, name: str, default: int, *, most: int) -> int:
    """A whole-number parameter from 1 to ``most``; ``default`` when absent."""
    text = request.query_params.get(name, "") or str(default)
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not 0 < int(text) <= most:
        raise BadPageInput(f"{name}: {text[:20]!r} is not a whole number from 1 to {most}")
    return int(text)


def _subject(graph: LineageGraph) -> tuple[str | None, str]:
    """The id and title of what the graph is about, from its own nodes (no second query).

    An artifact's graph has the artifact as its one root; a run's graph has the
    run's steps as roots, each naming the run.
    """
    roots = set(graph.roots)
    for node in graph.nodes:
        if node.id in roots:
            if node.kind == "artifact":
                return node.id, node.label
            if node.run_id is not None:
                return node.run_id, node.run_name or node.run_id
    return None, ""


@page_errors
async def lineage_page(request: Request) -> Response:
    """``/lineage?artifact=REF`` or ``?run=REF``: the graph up and/or down, to a depth."""
    ledger = _ledger(request)
    params = request.query_params
    artifact, run = params.get("artifact") or None, params.get("run") or None
    if (artifact is None) == (run is None):
        raise BadPageInput("give exactly one of ?artifact=REF or ?run=REF")
    direction = params.get("direction", "both")
    if direction not in _DIRECTIONS:
        raise BadPageInput(f"direction: {direction[:20]!r} is not upstream, downstream or both")
    depth = _whole(request, "depth", 3, most=50)
    async with ledger.queries(as_of_of(request)) as q:
        graph = await q.lineage(
            artifact=artifact, run=run, direction=_DIRECTIONS[direction], depth=depth
        )
        subject_id, title = _subject(graph)
        if subject_id is None:  # a run without steps: the graph cannot name it
            found = await q.run(run or "")
            subject_id, title = found.run_id, found.run_name
    head = await ledger.store.head()
    page = Page(request)
    focus = subject_id if artifact is not None else None
    svg = lineage_svg(
        graph,
        url=lambda path: page.url(path),
        label=f"Lineage of {title}, {direction}, depth {depth}",
        focus=focus,
    )
    context = {
        "graph": graph,
        "svg": svg,
        "subject_id": subject_id,
        "title": title,
        "is_artifact": artifact is not None,
        "direction": direction,
        "depth": depth,
        "depths": sorted({*DEPTHS, depth}),
        "pairs": len({(e.source, e.target) for e in graph.edges}),
    }
    return render(request, "lineage.html", context, head=head)


__all__ = [
    "artifact_page",
    "artifacts_list",
    "lineage_page",
    "pipelines_list",
    "run_page",
    "runs_list",
]
