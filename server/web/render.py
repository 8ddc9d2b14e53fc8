"""Rendering a page: the Jinja2 environment (autoescaping on), its filters, the as-of context.

Every page is a template filled with query results; every string from the
store goes through Jinja2's autoescaping (a run named ``<script>`` shows as
text). Links keep the page's ``as_of`` so a past view stays past as one
clicks through it, and the URL can be shared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["Page", "as_of_of", "duration", "environment", "render"]

_TEMPLATES = Path(__file__).parent / "templates"

#: Only this server's own scripts, styles and streams: if a string ever slipped
#: past the escaping, the browser still would not run an inline script from it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; an en dash when unknown."""
    if seconds is None:
        return "\u2013"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def when(value: datetime | None) -> str:
    """A time in UTC to the second, ``2026-11-28 08:00:12``; an en dash when unknown."""
    if value is None:
        return "\u2013"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    """Any JSON-able value as indented JSON (for parameters, metadata, raw events)."""
    return json.dumps(msgspec.to_builtins(value), indent=2, sort_keys=True, ensure_ascii=False)


def scalar(value: Any) -> str:
    """A metadata value in one line: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(msgspec.to_builtins(value), sort_keys=True, ensure_ascii=False)


def environment() -> jinja2.Environment:
    """The pages' Jinja2 environment: autoescape always on, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, when=when, pretty=pretty, scalar=scalar)
    return env


_ENV = environment()


def as_of_of(request: Request) -> str | None:
    """The page's ``as_of`` (a position or a time), or None for the live state."""
    value = request.query_params.get("as_of", "").strip()
    return value or None


class Page:
    """What every template gets: the request's as-of, and links that keep it."""

    def __init__(self, request: Request, *, head: int | None = None) -> None:
        self.request = request
        self.as_of = as_of_of(request)
        self.head = head
        self.path = request.url.path

    def url(self, path: str, /, **params: Any) -> str:
        """``path`` with ``params`` (None dropped) and the page's ``as_of`` as a query."""
        query: dict[str, Any] = {k: v for k, v in params.items() if v is not None and v != ""}
        if self.as_of is not None and "as_of" not in params:
            query["as_of"] = self.as_of
        return path + ("?" + urlencode(query) if query else "")

    def live_url(self) -> str:
        """This page now: the same query without ``as_of``."""
        query = [(k, v) for k, v in self.request.query_params.multi_items() if k != "as_of"]
        return self.path + ("?" + urlencode(query) if query else "")

    def hidden_params(self, *skip: str) -> list[tuple[str, str]]:
        """The page's query parameters to carry through a form (other than ``skip``)."""
        return [(k, v) for k, v in self.request.query_params.multi_items() if k not in skip]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    head: int | None = None,
) -> HTMLResponse:
    """``template`` rendered with ``context``, the page helper as ``page``, as HTML."""
    page = Page(request, head=head)
    html = _ENV.get_template(template).render(page=page, **context)
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(html, status_code=status_code, headers=headers)
