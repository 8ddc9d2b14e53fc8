"""The pages about the workspace and the log: stacks and components, events, one raw event.

Stacks and components read through ``ledger.queries(as_of)`` like every page;
the events pages read the log the way the JSON API's ``/events`` does
(``read_stored`` by position and type, capped at the as-of point) and show
each item exactly as ``events list --json`` shapes it, secrets masked.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cli.events import list_item
from eventstore.secret_masking import mask_secrets
from server.state import Ledger, resolve_as_of

from .errors import BadPageInput, page_errors
from .render import Page, as_of_of, render

#: Events per page of the events list.
EVENTS_PAGE = 100


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


@page_errors
async def stacks_page(request: Request) -> Response:
    """``/stacks``: every stack (the active one marked) and every component, secrets masked."""
    ledger = _ledger(request)
    async with ledger.queries(as_of_of(request)) as q:
        stacks = await q.stacks()
        components = await q.components()
    head = await ledger.store.head()
    active = {ref.component_id for s in stacks if s.active for ref in s.components.values()}
    shown = [
        {
            "component": c,
            "configuration": mask_secrets(c.configuration),
            "active": c.component_id in active,
        }
        for c in components
    ]
    return render(request, "stacks.html", {"stacks": stacks, "components": shown}, head=head)


def _position(request: Request, name: str) -> int | None:
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadPageInput(f"{name}: {text[:20]!r} is not a log position")
    return int(text)


async def _cap(ledger: Ledger, as_of: str | None) -> int:
    """The last position the page may show: the head, or the as-of point."""
    head = await ledger.store.head()
    if as_of is None:
        return head
    point = await resolve_as_of(ledger.store, as_of)
    if point.position is not None:
        return min(point.position, head)
    assert point.when is not None
    return min(await ledger.store.position_at(point.when), head)


async def _tail(ledger: Ledger, cap: int, types: list[str] | None) -> list[dict[str, Any]]:
    """The last page of events of ``types`` up to ``cap``: windows read backwards, widening.

    The log has no reverse read; reading windows of growing size from the end
    keeps the cost near the page for common types, bounded by the log for rare ones.
    """
    window = EVENTS_PAGE
    end = cap
    found: list[dict[str, Any]] = []
    while end >= 1 and len(found) < EVENTS_PAGE:
        start = max(end - window + 1, 1)
        chunk = [
            list_item(row)
            async for row in ledger.store.read_stored(start, types=types, to_position=end)
        ]
        found = chunk + found
        end, window = start - 1, window * 4
    return found[-EVENTS_PAGE:]


async def _page(
    ledger: Ledger, start: int, cap: int, types: list[str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """A page of events from ``start``, and whether more follow before ``cap``."""
    rows = [
        list_item(row)
        async for row in ledger.store.read_stored(
            start, limit=EVENTS_PAGE + 1, types=types, to_position=cap
        )
    ]
    return rows[:EVENTS_PAGE], len(rows) > EVENTS_PAGE


async def _stream_page(
    ledger: Ledger, stream: str, start: int | None, cap: int, types: list[str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """One stream's events (a stream is one run or the workspace: it fits a page or a few)."""
    rows = [
        list_item(row)
        async for row in ledger.store.read_stored_stream(stream)
        if row.position <= cap
        and (types is None or row.type in types)
        and (start is None or row.position >= start)
    ]
    if start is None:
        return rows[-EVENTS_PAGE:], False
    return rows[:EVENTS_PAGE], len(rows) > EVENTS_PAGE


@page_errors
async def events_page(request: Request) -> Response:
    """``/events``: the log as an audit trail, filtered by type and stream, live at its tail.

    Without ``from`` it shows the last page (the tail), which the live stream
    extends; ``verify=1`` walks the log's hash chain and marks the first bad
    position.
    """
    ledger = _ledger(request)
    as_of = as_of_of(request)
    cap = await _cap(ledger, as_of)
    types = [
        t.strip() for v in request.query_params.getlist("type") for t in v.split(",") if t.strip()
    ] or None
    stream = request.query_params.get("stream") or None
    start = _position(request, "from")
    if stream is not None:
        items, more = await _stream_page(ledger, stream, start, cap, types)
    elif start is None:
        items, more = await _tail(ledger, cap, types), False
    else:
        items, more = await _page(ledger, start, cap, types)
    report = await ledger.store.verify() if request.query_params.get("verify") else None
    page = Page(request)
    base = {
        k: v for k, v in request.query_params.items() if k not in ("from", "fragment", "verify")
    }
    first = items[0]["position"] if items else None
    last = items[-1]["position"] if items else None
    older = max((first or 1) - EVENTS_PAGE, 1)
    context: dict[str, Any] = {
        "events": items,
        "type_filter": ",".join(types or []),
        "stream": stream or "",
        "report": report,
        "bad": report.first_bad_position if report is not None else None,
        "tail": start is None,
        "older_url": page.url("/events", **base, **{"from": older})
        if first is not None and first > 1
        else None,
        "newer_url": page.url("/events", **base, **{"from": last + 1})
        if last is not None and start is not None and (more or last < cap)
        else None,
        "fragment": page.url("/events", **base, fragment="1"),
    }
    template = "_events_table.html" if "fragment" in request.query_params else "events.html"
    return render(request, template, context, head=await ledger.store.head())


@page_errors
async def event_page(request: Request) -> Response:
    """``/events/{position}``: one event as stored (``events show``), secrets masked."""
    ledger = _ledger(request)
    text = request.path_params["position"]
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise BadPageInput(f"{text[:20]!r} is not a log position")
    position = int(text)
    cap = await _cap(ledger, as_of_of(request))
    stored = await ledger.store.stored_at(position) if position <= cap else None
    if stored is None:
        return render(
            request,
            "error.html",
            {
                "heading": "Not found",
                "message": f"no event at position {position}"
                + (f" as of {as_of_of(request)}" if as_of_of(request) else ""),
            },
            status_code=404,
        )
    item = list_item(stored)
    item["hash"] = stored.hash.hex()
    return render(request, "event.html", {"event": item}, head=await ledger.store.head())
