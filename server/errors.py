"""The server's errors, and how every error becomes an HTTP answer.

The server's own errors root in :class:`ServerError`, a
:class:`~eventstore.errors.LedgerError`, so the CLI reports them as one line::

    ServerError
    ├── TokenFileError         the token file cannot be read, written or parsed
    ├── InsecureBindError      a non-loopback address without tokens (and no --insecure)
    └── ListenError            the address cannot be listened on (in use, not local...)

Every error answer has one JSON shape, ``{"error": "<short_code>", "message":
"<text>"}``. Bad input is a 4xx naming the problem (clients do not retry a
4xx); a 5xx means a real server fault, after which a retry is safe. No answer
carries a traceback: unexpected errors are logged with theirs and answered
``{"error": "internal", ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from eventstore.errors import (
    AlreadyExistsError,
    AppendError,
    BackendUnavailableError,
    ConcurrencyError,
    EventIdConflictError,
    InvalidEventError,
    LedgerError,
    LifecycleError,
    NotFoundError,
    ReadOnlyStoreError,
    StoreBusyError,
    StoreClosedError,
    StoreFullError,
    TransferError,
)
from eventstore.logs import get_logger
from projections.errors import (
    ProjectionError,
    QueryError,
    UnknownProjectionError,
    ViewNotFoundError,
    ViewsTimeoutError,
)

__all__ = [
    "InsecureBindError",
    "ListenError",
    "ServerError",
    "TokenFileError",
    "error_response",
    "exception_handlers",
    "status_of",
]

log = get_logger("server.errors")


class ServerError(LedgerError):
    """Raised by the server package; the root of its errors."""


class TokenFileError(ServerError):
    """Raised when the token file cannot be read, written or parsed, or a name is wrong."""


class TokenExistsError(TokenFileError, AlreadyExistsError):
    """Raised when a token is created under a name the file already holds (exit 8)."""


class TokenNotFoundError(TokenFileError, NotFoundError):
    """Raised when a token named for revoking is not in the file (exit 4)."""


class InsecureBindError(ServerError):
    """Raised when asked to serve a non-loopback address without tokens or ``--insecure``."""


class ListenError(ServerError):
    """Raised when the server cannot listen on its address (the port is taken...)."""


#: HTTP status -> the short code of its error body.
_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
    507: "store_full",
}

#: metaledger's errors, most specific first, and the status each is answered with.
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (NotFoundError, 404),
    (ViewNotFoundError, 404),
    (UnknownProjectionError, 404),
    (AlreadyExistsError, 409),
    (ConcurrencyError, 409),
    (EventIdConflictError, 409),
    (InvalidEventError, 400),
    (LifecycleError, 409),
    (AppendError, 400),
    (TransferError, 400),
    (QueryError, 400),
    (StoreFullError, 507),
    (StoreBusyError, 503),
    (BackendUnavailableError, 503),
    (ReadOnlyStoreError, 503),
    (StoreClosedError, 503),
    (ViewsTimeoutError, 503),
    (ProjectionError, 503),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status a metaledger error is answered with (500: not a known error)."""
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """The JSON error answer: ``{"error": code, "message": message, **extra}``."""
    body = {"error": code or _CODES.get(status, "error"), "message": message, **(extra or {})}
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _ledger_error(request: Request, exc: Exception) -> Response:
    status = status_of(exc)
    if status >= 500:
        log.warning(
            "request_failed", path=request.url.path, error=str(exc), kind=type(exc).__name__
        )
    return error_response(status, str(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("request_crashed", path=request.url.path, exc_info=exc)
    return error_response(500, "internal server error; the server logged it", code="internal")


#: The handlers ``create_app`` installs.
exception_handlers: Mapping[Any, Any] = {
    HTTPException: _http_exception,
    LedgerError: _ledger_error,
    Exception: _unexpected,
}
