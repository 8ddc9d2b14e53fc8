"""The web pages: runs, a run, an artifact, lineage, stacks, events, with time travel.

Server-rendered HTML (Jinja2, autoescaped) over the same queries as the JSON
API, a little plain JavaScript (pan/zoom, live refresh, the as-of slider) and
one stylesheet, all served from ``/static``: no build step, nothing fetched
from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import audit_pages, pages

__all__ = ["routes"]

_STATIC = Path(__file__).parent / "static"

#: The pages' routes, joined into the app by ``server.routes``.
routes: list[BaseRoute] = [
    Route("/", pages.runs_list, methods=["GET"]),
    Route("/runs/{ref:path}", pages.run_page, methods=["GET"]),
    Route("/artifacts", pages.artifacts_list, methods=["GET"]),
    Route("/artifacts/{ref:path}", pages.artifact_page, methods=["GET"]),
    Route("/pipelines", pages.pipelines_list, methods=["GET"]),
    Route("/lineage", pages.lineage_page, methods=["GET"]),
    Route("/stacks", audit_pages.stacks_page, methods=["GET"]),
    Route("/events", audit_pages.events_page, methods=["GET"]),
    Route("/events/{position}", audit_pages.event_page, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
]
