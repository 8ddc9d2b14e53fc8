"""A page's errors as pages: a bad reference is a 404 page, bad input a 400 page.

A server run with tokens asks the pages for a ``read`` token, as it asks the
JSON API: without one a page is a 401 page, never the data.

The handlers read through the same queries as the JSON API, so they meet the
same errors; here they become a readable page (never a traceback) with the
message the CLI would print.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from eventstore.errors import LedgerError
from projections.errors import QueryError, ViewNotFoundError
from server.auth import require_scope

from .render import render

Handler = Callable[[Request], Awaitable[Response]]


class BadPageInput(ValueError):
    """Raised when a page's query parameter cannot be used (a bad filter or depth)."""


def page_errors(handler: Handler) -> Handler:
    """``handler`` with not-found and bad-input errors answered as error pages."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            # The pages show what the read API shows: they need what it needs.
            require_scope(request, "read")
            return await handler(request)
        except HTTPException as exc:
            return _error(request, "Not allowed", exc.detail, exc.status_code, exc.headers)
        except ViewNotFoundError as exc:
            return _error(request, "Not found", str(exc), 404)
        except (QueryError, BadPageInput) as exc:
            return _error(request, "Cannot show this", str(exc), 400)
        except LedgerError as exc:
            # The store or views could not answer (busy, damaged): say so, as the CLI does.
            return _error(request, "The ledger cannot answer", str(exc), 503)

    return wrapped


def _error(
    request: Request,
    heading: str,
    message: str,
    status: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    response = render(
        request, "error.html", {"heading": heading, "message": message}, status_code=status
    )
    response.headers.update(headers or {})
    return response
